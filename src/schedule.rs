//! Learning-rate schedules for [`Trainer`](crate::Trainer): the rate of every optimizer step
//! as a function of the base rate (the optimizer's when training started), the step and the
//! epoch. They hold no state of their own, so a resumed loop, which knows its step and epoch,
//! gets the same rates.
//!
//! Each schedule's settings are checked ([`Schedule::check`]) when it is given to a
//! [`Trainer`](crate::Trainer) and again when `fit` starts, and every rate it gives is
//! checked (finite, ≥ 0) before it is set on the optimizer.

use std::f64::consts::PI;

use crate::error::{Result, check_setting};

/// A learning-rate schedule.
pub trait Schedule {
    /// The rate of optimizer step `step` (from 0, over the whole run), in epoch `epoch` (from
    /// 0), for the base rate `base`.
    fn lr(&self, base: f64, step: u64, epoch: usize) -> f64;

    /// `Ok` if the settings are in their domain, else [`Error::InvalidSetting`](crate::Error)
    /// naming the one that is not. The default accepts anything.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// A decay factor: finite and ≥ 0 (a negative one would give negative rates).
fn check_gamma(setting: &'static str, gamma: f64) -> Result<()> {
    check_setting(setting, "a finite factor ≥ 0", gamma, gamma.is_finite() && gamma >= 0.0)
}

/// The base rate throughout.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Constant;

impl Schedule for Constant {
    fn lr(&self, base: f64, _step: u64, _epoch: usize) -> f64 {
        base
    }
}

/// Per epoch, PyTorch's `StepLR`: `base·gamma^⌊epoch / every⌋`; `every ≥ 1`, `gamma` finite
/// and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    /// Epochs between decays.
    pub every: usize,
    /// The factor at each decay, e.g. 0.1.
    pub gamma: f64,
}

impl Schedule for StepDecay {
    fn lr(&self, base: f64, _step: u64, epoch: usize) -> f64 {
        // `every = 0`, which `check` refuses, taken as 1 rather than dividing by zero.
        base * self.gamma.powf((epoch / self.every.max(1)) as f64)
    }

    fn check(&self) -> Result<()> {
        check_setting("StepDecay.every", "at least 1", self.every, self.every >= 1)?;
        check_gamma("StepDecay.gamma", self.gamma)
    }
}

/// Per epoch, PyTorch's `ExponentialLR`: `base·gamma^epoch`; `gamma` finite and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exponential {
    /// The factor per epoch, e.g. 0.95.
    pub gamma: f64,
}

impl Schedule for Exponential {
    fn lr(&self, base: f64, _step: u64, epoch: usize) -> f64 {
        base * self.gamma.powf(epoch as f64)
    }

    fn check(&self) -> Result<()> {
        check_gamma("Exponential.gamma", self.gamma)
    }
}

/// Per step, PyTorch's `CosineAnnealingLR` without restarts:
/// `min + (base − min)·(1 + cos(π·t/T))/2` for step `t < T = steps`, then `min`; `T ≥ 1` (as
/// PyTorch refuses `T_max = 0`), `min` finite and ≥ 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    /// `T`, the steps from the base rate down to `min`.
    pub steps: u64,
    /// The rate at the end.
    pub min: f64,
}

impl Schedule for Cosine {
    fn lr(&self, base: f64, step: u64, _epoch: usize) -> f64 {
        if step >= self.steps {
            return self.min;
        }
        let t = step as f64 / self.steps as f64;
        self.min + (base - self.min) * (1.0 + (PI * t).cos()) / 2.0
    }

    fn check(&self) -> Result<()> {
        check_setting("Cosine.steps", "at least 1", self.steps, self.steps >= 1)?;
        check_setting("Cosine.min", "a finite rate ≥ 0", self.min, self.min.is_finite() && self.min >= 0.0)
    }
}

/// Per step, a linear warmup in front of another schedule: `base·(t + 1)/steps` for step
/// `t < steps`, then `then` as if it started at step `steps` (its steps counted from 0 there;
/// its epochs as they are).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Warmup<S> {
    /// Steps of warmup.
    pub steps: u64,
    /// The schedule after it.
    pub then: S,
}

impl<S: Schedule> Schedule for Warmup<S> {
    fn lr(&self, base: f64, step: u64, epoch: usize) -> f64 {
        if step < self.steps {
            base * (step + 1) as f64 / self.steps as f64
        } else {
            self.then.lr(base, step - self.steps, epoch)
        }
    }

    fn check(&self) -> Result<()> {
        self.then.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        assert_eq!(Constant.lr(0.1, 99, 9), 0.1);
        let step = StepDecay { every: 3, gamma: 0.1 };
        let rates: Vec<f64> = (0..7).map(|e| step.lr(1.0, 0, e)).collect();
        assert_eq!(rates, [1.0, 1.0, 1.0, 0.1, 0.1, 0.1, 0.1f64.powf(2.0)]);
        assert_eq!(Exponential { gamma: 0.5 }.lr(8.0, 0, 3), 1.0);
        let cos = Cosine { steps: 100, min: 0.01 };
        assert_eq!(cos.lr(1.0, 0, 0), 1.0);
        assert!((cos.lr(1.0, 50, 0) - 0.505).abs() < 1e-15);
        assert_eq!(cos.lr(1.0, 100, 0), 0.01);
        assert_eq!(cos.lr(1.0, 1000, 0), 0.01);
        let warm = Warmup { steps: 4, then: cos };
        let rates: Vec<f64> = (0..5).map(|t| warm.lr(1.0, t, 0)).collect();
        assert_eq!(rates, [0.25, 0.5, 0.75, 1.0, 1.0]);
        assert_eq!(warm.lr(1.0, 104, 0), 0.01);
        // T = 0, which `check` refuses: every step is past T, so the minimum, as documented
        // (it was the base rate forever).
        assert_eq!(Cosine { steps: 0, min: 0.01 }.lr(1.0, 0, 0), 0.01);
    }

    #[test]
    fn settings_outside_their_domain_are_refused() {
        use crate::Error;
        let refused = |r: Result<()>, name: &str| {
            assert!(
                matches!(&r, Err(Error::InvalidSetting { setting, .. }) if *setting == name),
                "{name}: {r:?}"
            );
        };
        refused(Cosine { steps: 0, min: 0.0 }.check(), "Cosine.steps");
        for min in [-1e-3, f64::NAN, f64::INFINITY] {
            refused(Cosine { steps: 5, min }.check(), "Cosine.min");
            refused(Warmup { steps: 2, then: Cosine { steps: 5, min } }.check(), "Cosine.min");
        }
        refused(StepDecay { every: 0, gamma: 0.5 }.check(), "StepDecay.every");
        for gamma in [-0.5, f64::NAN, f64::NEG_INFINITY] {
            refused(StepDecay { every: 2, gamma }.check(), "StepDecay.gamma");
            refused(Exponential { gamma }.check(), "Exponential.gamma");
        }
        assert!(Warmup { steps: 0, then: Cosine { steps: 1, min: 0.0 } }.check().is_ok());
        assert!(StepDecay { every: 1, gamma: 0.0 }.check().is_ok());
        assert!(Constant.check().is_ok());
    }
}
