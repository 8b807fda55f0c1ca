/// Reads a fuzz input one byte at a time; past its end every byte is 0, so short inputs (and
/// hand-written seeds) are complete.
pub struct Bytes<'a>(pub &'a [u8]);

impl Bytes<'_> {
    pub fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        usize::from(self.u8()) % n
    }
}
