//! Runtime dispatch to wider vectors: [`widest`] runs a closure compiled for the widest
//! vector extension the CPU has (AVX-512, else AVX2), so that element loops inlined into it
//! use 512- or 256-bit registers on a crate built for baseline x86-64 (SSE2). Lives here, in
//! the crate's one `unsafe` module, because calling a `#[target_feature]` function is
//! `unsafe`.
//!
//! The same IEEE operations run either way (Rust never contracts `a·b + c` into an FMA), so
//! the results are bitwise those of the baseline build; only their speed differs.

/// Work to run with the widest vectors: [`run`](Self::run) must be `#[inline(always)]`, and
/// so must everything it calls in its loops (a closure is inlined only where the compiler's
/// cost model says so): code left out of line keeps the build's baseline.
pub(crate) trait Kernel {
    type Output;
    fn run(self) -> Self::Output;
}

/// `f.run()`, compiled for AVX-512 (F, DQ, VL) where the CPU has it, else for AVX2, else as
/// built.
#[inline(always)]
pub(crate) fn widest<K: Kernel>(f: K) -> K::Output {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has AVX-512 F, DQ and VL, checked just above.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { avx2(f) };
        }
    }
    f.run()
}

#[cfg(target_arch = "x86_64")]
// DQ and VL as well: without DQ, a float AND (`|x|`) on 512-bit registers is split in two.
#[target_feature(enable = "avx512f,avx512dq,avx512vl")]
unsafe fn avx512<K: Kernel>(f: K) -> K::Output {
    f.run()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn avx2<K: Kernel>(f: K) -> K::Output {
    f.run()
}
