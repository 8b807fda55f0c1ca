//! Learning-rate schedules for [`Trainer`](crate::Trainer): the rate of every optimizer step
//! as a function of the base rate (the optimizer's when training started), the step and the
//! epoch. They hold no state of their own, so a resumed loop, which knows its step and epoch,
//! gets the same rates.

use std::f64::consts::PI;

/// A learning-rate schedule.
pub trait Schedule {
    /// The rate of optimizer step `step` (from 0, over the whole run), in epoch `epoch` (from
    /// 0), for the base rate `base`.
    fn lr(&self, base: f64, step: u64, epoch: usize) -> f64;
}

/// The base rate throughout.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Constant;

impl Schedule for Constant {
    fn lr(&self, base: f64, _step: u64, _epoch: usize) -> f64 {
        base
    }
}

/// Per epoch, PyTorch's `StepLR`: `base·gamma^⌊epoch / every⌋`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    /// Epochs between decays.
    pub every: usize,
    /// The factor at each decay, e.g. 0.1.
    pub gamma: f64,
}

impl Schedule for StepDecay {
    fn lr(&self, base: f64, _step: u64, epoch: usize) -> f64 {
        base * self.gamma.powf((epoch / self.every.max(1)) as f64)
    }
}

/// Per epoch, PyTorch's `ExponentialLR`: `base·gamma^epoch`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Exponential {
    /// The factor per epoch, e.g. 0.95.
    pub gamma: f64,
}

impl Schedule for Exponential {
    fn lr(&self, base: f64, _step: u64, epoch: usize) -> f64 {
        base * self.gamma.powf(epoch as f64)
    }
}

/// Per step, PyTorch's `CosineAnnealingLR` without restarts:
/// `min + (base − min)·(1 + cos(π·t/T))/2` for step `t < T = steps`, then `min`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Cosine {
    /// `T`, the steps from the base rate down to `min`.
    pub steps: u64,
    /// The rate at the end.
    pub min: f64,
}

impl Schedule for Cosine {
    fn lr(&self, base: f64, step: u64, _epoch: usize) -> f64 {
        let t = step.min(self.steps) as f64 / self.steps.max(1) as f64;
        self.min + (base - self.min) * (1.0 + (PI * t).cos()) / 2.0
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
    }
}
