//! Which BLAS runs the crate's GEMMs, on which kernel, and whether that kernel is a fallback
//! below what the CPU supports.
//!
//! OpenBLAS built with `DYNAMIC_ARCH` (Debian's, Ubuntu's, Fedora's) picks one kernel set
//! when it loads, from the CPU's vendor, family and model. A model newer than the release
//! can land on the generic SSE3 `Prescott` kernels: OpenBLAS issue 4267, fixed for Intel in
//! 0.3.25 (Debian 12 ships 0.3.21). Its GEMMs then run 3–7× slower than the AVX-512 kernels
//! the same library carries (2-core AMD EPYC, Zen 4, OpenBLAS 0.3.21, one thread, sgemm:
//! 32×784×256 547 µs on `Prescott` against 148 µs on `Cooperlake`; 1024×3×4 6.2 µs against
//! 1.2 µs). `OPENBLAS_CORETYPE=<kernel>` in the environment is OpenBLAS's documented override.
//!
//! The crate reports what runs ([`blas_info`]) and, once per process, warns on stderr when
//! OpenBLAS picked a fallback by itself, naming the variable that fixes it. It does not
//! switch kernels itself: OpenBLAS can only switch by `gotoblas_dynamic_quit`/`_init`
//! (internals, not API) after a `setenv`, a pointer swap with no lock that breaks any call
//! in flight on another thread — which a library cannot rule out in its user's process.

use std::fmt;

/// The widest vector instructions a kernel uses, or a CPU has (ordered: `Sse3 < Avx < …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// SSE2/SSE3 (OpenBLAS's `Prescott`, `Core2`, `Nehalem`, … kernels).
    Sse3,
    /// AVX (`Sandybridge`, and AMD's `Bulldozer` to `Excavator`).
    Avx,
    /// AVX2 with FMA (`Haswell`, `Zen`).
    Avx2,
    /// AVX-512 F, CD, BW, DQ and VL (`SkylakeX`, `Cooperlake`, `SapphireRapids`).
    Avx512,
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Isa::Sse3 => "SSE3",
            Isa::Avx => "AVX",
            Isa::Avx2 => "AVX2",
            Isa::Avx512 => "AVX-512",
        })
    }
}

/// The CPU features that decide which OpenBLAS kernel fits best.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// The widest vector instructions the CPU and OS support; `None` off x86-64.
    pub isa: Option<Isa>,
    /// AVX-512 BF16 (OpenBLAS's `Cooperlake` kernels use it; its `SkylakeX` ones do not).
    pub avx512_bf16: bool,
}

impl CpuFeatures {
    /// This CPU's, by `is_x86_feature_detected!` (which also checks that the OS saves the
    /// vector registers).
    pub fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            let avx512 = has!("avx512f")
                && has!("avx512cd")
                && has!("avx512bw")
                && has!("avx512dq")
                && has!("avx512vl");
            let isa = if avx512 {
                Isa::Avx512
            } else if has!("avx2") && has!("fma") {
                Isa::Avx2
            } else if has!("avx") {
                Isa::Avx
            } else {
                Isa::Sse3
            };
            CpuFeatures { isa: Some(isa), avx512_bf16: avx512 && has!("avx512bf16") }
        }
        #[cfg(not(target_arch = "x86_64"))]
        CpuFeatures::default()
    }

    /// The OpenBLAS kernel (an `OPENBLAS_CORETYPE` value that 0.3.21 and later accept) for
    /// the widest instructions this CPU has: `None` where the baseline is the best (or off
    /// x86-64).
    pub fn best_kernel(self) -> Option<&'static str> {
        match self.isa? {
            Isa::Avx512 if self.avx512_bf16 => Some("Cooperlake"),
            Isa::Avx512 => Some("SkylakeX"),
            Isa::Avx2 => Some("Haswell"),
            Isa::Avx => Some("Sandybridge"),
            Isa::Sse3 => None,
        }
    }
}

impl Isa {
    /// The instructions an OpenBLAS x86-64 kernel (its `openblas_get_corename`, any case)
    /// uses; `None` for a name this table does not know (another architecture's, a later
    /// release's).
    pub fn of_kernel(kernel: &str) -> Option<Isa> {
        let isa = match kernel.to_ascii_lowercase().as_str() {
            "skylakex" | "cooperlake" | "sapphirerapids" => Isa::Avx512,
            "haswell" | "zen" => Isa::Avx2,
            "sandybridge" | "bulldozer" | "piledriver" | "steamroller" | "excavator" => Isa::Avx,
            "katmai" | "coppermine" | "northwood" | "prescott" | "banias" | "atom" | "core2" | "penryn"
            | "dunnington" | "nehalem" | "athlon" | "opteron" | "opteron(sse3)" | "barcelona" | "bobcat"
            | "nano" => Isa::Sse3,
            _ => return None,
        };
        Some(isa)
    }
}

/// A kernel below what the CPU supports, and the kernel to run instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fallback {
    /// The instructions the running kernel uses.
    pub running: Isa,
    /// The instructions the CPU has.
    pub cpu: Isa,
    /// The kernel to ask for: `OPENBLAS_CORETYPE=<best>`.
    pub best: &'static str,
}

impl Fallback {
    /// Whether `kernel` is a fallback on a CPU with `cpu`: the decision behind
    /// [`BlasInfo::fallback`], as a pure function. `None` when the kernel uses the CPU's
    /// widest instructions, or either is unknown.
    pub fn of(kernel: &str, cpu: CpuFeatures) -> Option<Fallback> {
        let (running, cpu_isa, best) = (Isa::of_kernel(kernel)?, cpu.isa?, cpu.best_kernel()?);
        (running < cpu_isa).then_some(Fallback { running, cpu: cpu_isa, best })
    }
}

/// What runs the crate's GEMMs: [`blas_info`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlasInfo {
    /// `"OpenBLAS"`, or `"CBLAS"` for a provider linked without the `openblas` feature.
    pub library: &'static str,
    /// OpenBLAS's version, e.g. `"0.3.21"`.
    pub version: Option<String>,
    /// OpenBLAS's kernel set (`openblas_get_corename`), e.g. `"Cooperlake"`, `"Prescott"`.
    pub kernel: Option<String>,
    /// Whether `OPENBLAS_CORETYPE` is set (the user chose the kernel, or tried to).
    pub kernel_from_env: bool,
    /// OpenBLAS's thread count for one GEMM.
    pub threads: Option<usize>,
    /// This CPU's features.
    pub cpu: CpuFeatures,
}

impl BlasInfo {
    /// `Some` when the kernel is below what the CPU supports, with the kernel to ask for.
    pub fn fallback(&self) -> Option<Fallback> {
        Fallback::of(self.kernel.as_deref()?, self.cpu)
    }

    /// The one-line fix for a fallback: `"export OPENBLAS_CORETYPE=SkylakeX"`.
    pub fn fix(&self) -> Option<String> {
        self.fallback().map(|f| format!("export OPENBLAS_CORETYPE={}", f.best))
    }

    /// Whether the crate warns about this BLAS on its own (once per process): a fallback that
    /// OpenBLAS picked, not one the user asked for with `OPENBLAS_CORETYPE`.
    pub fn warns(&self) -> bool {
        !self.kernel_from_env && self.fallback().is_some()
    }
}

/// One line: `OpenBLAS 0.3.21, kernel Cooperlake (AVX-512), 2 threads`, and for a fallback
/// `…; FALLBACK: this CPU has AVX-512, the kernel uses SSE3; fix: export OPENBLAS_CORETYPE=…`.
impl fmt::Display for BlasInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.library)?;
        if let Some(v) = &self.version {
            write!(f, " {v}")?;
        }
        if let Some(k) = &self.kernel {
            write!(f, ", kernel {k}")?;
            match (Isa::of_kernel(k), self.kernel_from_env) {
                (Some(isa), true) => write!(f, " ({isa}, from OPENBLAS_CORETYPE)")?,
                (Some(isa), false) => write!(f, " ({isa})")?,
                (None, true) => f.write_str(" (from OPENBLAS_CORETYPE)")?,
                (None, false) => {}
            }
        }
        if let Some(t) = self.threads {
            write!(f, ", {t} thread{}", if t == 1 { "" } else { "s" })?;
        }
        if let Some(fb) = self.fallback() {
            write!(
                f,
                "; FALLBACK: this CPU has {}, the kernel uses {}; fix: export OPENBLAS_CORETYPE={}",
                fb.cpu, fb.running, fb.best
            )?;
        }
        Ok(())
    }
}

/// What runs the crate's GEMMs: the library, its version and kernel, its thread count, and
/// whether the kernel is a fallback below what this CPU supports ([`BlasInfo::fallback`],
/// [`BlasInfo::fix`]). `Display` gives it in one line, which the examples and benches print.
///
/// ```
/// let info = two_layer_net::blas_info();
/// println!("{info}"); // OpenBLAS 0.3.21, kernel Cooperlake (AVX-512), 2 threads
/// if let Some(fix) = info.fix() {
///     eprintln!("GEMMs run on a fallback kernel; {fix}");
/// }
/// ```
pub fn blas_info() -> BlasInfo {
    #[cfg(feature = "openblas")]
    {
        let config = crate::blas::openblas_config();
        BlasInfo {
            library: "OpenBLAS",
            version: config.split_whitespace().nth(1).map(str::to_owned),
            kernel: Some(crate::blas::openblas_corename()),
            kernel_from_env: std::env::var_os("OPENBLAS_CORETYPE").is_some_and(|v| !v.is_empty()),
            threads: Some(crate::blas::num_threads()),
            cpu: CpuFeatures::detect(),
        }
    }
    #[cfg(not(feature = "openblas"))]
    BlasInfo {
        library: "CBLAS",
        version: None,
        kernel: None,
        kernel_from_env: false,
        threads: None,
        cpu: CpuFeatures::detect(),
    }
}

/// Once per process, when OpenBLAS picked a fallback kernel by itself ([`BlasInfo::warns`]),
/// one line on stderr with the fix. Called when a network is made: a user who never reads
/// [`blas_info`] still learns that the GEMMs run 3–7× below what the machine can do. Setting
/// `OPENBLAS_CORETYPE` (to the advised kernel, or to keep the current one) silences it.
pub(crate) fn warn_once_if_fallback() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let info = blas_info();
        if info.warns() {
            eprintln!(
                "two-layer-net: warning: {info} (OpenBLAS < 0.3.25 does not know this CPU: OpenBLAS issue 4267)"
            );
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const AVX512_BF16: CpuFeatures = CpuFeatures { isa: Some(Isa::Avx512), avx512_bf16: true };
    const AVX512: CpuFeatures = CpuFeatures { isa: Some(Isa::Avx512), avx512_bf16: false };
    const AVX2: CpuFeatures = CpuFeatures { isa: Some(Isa::Avx2), avx512_bf16: false };
    const AVX: CpuFeatures = CpuFeatures { isa: Some(Isa::Avx), avx512_bf16: false };
    const SSE3: CpuFeatures = CpuFeatures { isa: Some(Isa::Sse3), avx512_bf16: false };
    const NOT_X86: CpuFeatures = CpuFeatures { isa: None, avx512_bf16: false };

    fn info(kernel: &str, from_env: bool, cpu: CpuFeatures) -> BlasInfo {
        BlasInfo {
            library: "OpenBLAS",
            version: Some("0.3.21".into()),
            kernel: Some(kernel.into()),
            kernel_from_env: from_env,
            threads: Some(2),
            cpu,
        }
    }

    #[test]
    fn generic_kernels_on_a_newer_cpu_are_a_fallback() {
        // Issue #21's Xeon (family 6, model 207, AVX-512 and AMX) under OpenBLAS 0.3.21.
        let fb = Fallback::of("Prescott", AVX512_BF16).unwrap();
        assert_eq!(fb, Fallback { running: Isa::Sse3, cpu: Isa::Avx512, best: "Cooperlake" });
        assert_eq!(Fallback::of("Prescott", AVX512).unwrap().best, "SkylakeX");
        assert_eq!(Fallback::of("Nehalem", AVX2).unwrap().best, "Haswell");
        assert_eq!(Fallback::of("Sandybridge", AVX2).unwrap().best, "Haswell");
        assert_eq!(Fallback::of("Core2", AVX).unwrap().best, "Sandybridge");
        // A Zen 4 under a release that maps it to its AVX2 Zen kernels.
        assert_eq!(Fallback::of("Zen", AVX512_BF16).unwrap().running, Isa::Avx2);
        assert_eq!(Fallback::of("HASWELL", AVX512).unwrap().best, "SkylakeX");
    }

    #[test]
    fn kernels_that_use_the_widest_instructions_are_not() {
        for (kernel, cpu) in [
            ("Cooperlake", AVX512_BF16),
            ("SkylakeX", AVX512_BF16), // the same sgemm/dgemm kernels as Cooperlake
            ("SkylakeX", AVX512),
            ("Haswell", AVX2),
            ("Zen", AVX2),
            ("Sandybridge", AVX),
            ("Prescott", SSE3),
            ("Haswell", SSE3), // a kernel above the CPU: not ours to judge (OpenBLAS forced it)
        ] {
            assert_eq!(Fallback::of(kernel, cpu), None, "{kernel} on {cpu:?}");
        }
    }

    #[test]
    fn unknown_kernels_and_cpus_give_no_advice() {
        assert_eq!(Fallback::of("NEOVERSEN1", AVX512), None);
        assert_eq!(Fallback::of("some future kernel", AVX2), None);
        assert_eq!(Fallback::of("Prescott", NOT_X86), None);
        assert_eq!(NOT_X86.best_kernel(), None);
        assert_eq!(SSE3.best_kernel(), None);
    }

    #[test]
    fn the_crate_warns_only_about_a_fallback_openblas_chose() {
        assert!(info("Prescott", false, AVX512).warns());
        // The user set OPENBLAS_CORETYPE (for a reason, perhaps): reported, not warned about.
        assert!(!info("Prescott", true, AVX512).warns());
        assert!(info("Prescott", true, AVX512).fallback().is_some());
        assert!(!info("SkylakeX", false, AVX512).warns());
    }

    #[test]
    fn one_line_with_the_exact_fix() {
        let slow = info("Prescott", false, AVX512_BF16);
        assert_eq!(slow.fix().as_deref(), Some("export OPENBLAS_CORETYPE=Cooperlake"));
        assert_eq!(
            slow.to_string(),
            "OpenBLAS 0.3.21, kernel Prescott (SSE3), 2 threads; FALLBACK: this CPU has AVX-512, \
             the kernel uses SSE3; fix: export OPENBLAS_CORETYPE=Cooperlake"
        );
        let fast = info("Cooperlake", true, AVX512_BF16);
        assert_eq!(fast.fix(), None);
        assert_eq!(
            fast.to_string(),
            "OpenBLAS 0.3.21, kernel Cooperlake (AVX-512, from OPENBLAS_CORETYPE), 2 threads"
        );
        assert!(!fast.to_string().contains('\n'));
    }

    #[test]
    fn this_process_reports_a_kernel_and_cpu() {
        let info = blas_info();
        #[cfg(feature = "openblas")]
        {
            assert!(info.version.as_deref().is_some_and(|v| v.starts_with("0.")), "{info:?}");
            assert!(info.kernel.as_deref().is_some_and(|k| !k.is_empty()), "{info:?}");
            assert!(info.threads.is_some_and(|t| t >= 1));
        }
        #[cfg(target_arch = "x86_64")]
        assert!(info.cpu.isa.is_some());
    }
}
