//! Weight initializations: the sample standard deviation of W1 and W2 matches each scheme's
//! formula (He, Xavier, a given σ, standard normal) with zero biases, in f64 and f32; a seed
//! gives the same weights, scaled from one standard-normal stream. `Init::Orthogonal` is in
//! tests/orthogonal.rs.

mod common;

use common::*;
use two_layer_net::ndarray::ArrayView2;
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{Init, TwoLayerNet};

fn mean_std(v: ArrayView2<'_, f64>) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.sum() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

#[test]
fn init_sample_std_matches_formula() {
    let (d, h, k) = (500, 400, 300);
    for (init, s1, s2) in [
        (Init::He, (2.0 / 500.0f64).sqrt(), (2.0 / 400.0f64).sqrt()),
        (Init::Xavier, (2.0 / 900.0f64).sqrt(), (2.0 / 700.0f64).sqrt()),
        (Init::Normal { std: 0.37 }, 0.37, 0.37),
        (Init::StandardNormal, 1.0, 1.0),
    ] {
        assert_eq!(init.std(d, h), s1, "{init:?}");
        assert_eq!(init.std(h, k), s2, "{init:?}");
        let net = TwoLayerNet::<f64>::with_init(d, h, k, init, &mut StdRng::seed_from_u64(60)).unwrap();
        for (name, w, sigma) in [("w1", net.w1(), s1), ("w2", net.w2(), s2)] {
            let (mean, std) = mean_std(w);
            assert!((std / sigma - 1.0).abs() < 0.05, "{init:?} {name}: sample std {std}, formula {sigma}");
            assert!(mean.abs() < 0.02 * sigma, "{init:?} {name}: sample mean {mean}");
        }
        assert!(net.b1().iter().chain(net.b2().iter()).all(|&b| b == 0.0), "{init:?}: biases not zero");
    }
}

#[test]
fn init_is_seeded_and_scales_one_standard_normal_stream() {
    let (d, h, k) = (20, 30, 4);
    for init in [Init::He, Init::Xavier, Init::Normal { std: 0.01 }, Init::StandardNormal] {
        let a = TwoLayerNet::<f64>::with_init(d, h, k, init, &mut StdRng::seed_from_u64(61)).unwrap();
        let b = TwoLayerNet::<f64>::with_init(d, h, k, init, &mut StdRng::seed_from_u64(61)).unwrap();
        let c = TwoLayerNet::<f64>::with_init(d, h, k, init, &mut StdRng::seed_from_u64(62)).unwrap();
        assert_eq!(
            bits(a.params().as_slice()),
            bits(b.params().as_slice()),
            "{init:?}: same seed, different params"
        );
        assert_ne!(
            bits(a.params().as_slice()),
            bits(c.params().as_slice()),
            "{init:?}: different seeds, same params"
        );
        // W1 then W2 from one N(0, 1) stream, each scaled by its σ.
        let z = TwoLayerNet::<f64>::with_init(d, h, k, Init::StandardNormal, &mut StdRng::seed_from_u64(61))
            .unwrap();
        for (w, zw, sigma) in [(a.w1(), z.w1(), init.std(d, h)), (a.w2(), z.w2(), init.std(h, k))] {
            for (&v, &zv) in w.iter().zip(zw.iter()) {
                assert!(
                    (v - zv * sigma).abs() <= 1e-15 * (zv * sigma).abs(),
                    "{init:?}: {v} vs {zv}·{sigma}"
                );
            }
        }
    }
    // `new` is StandardNormal.
    let n = TwoLayerNet::<f64>::new(d, h, k, &mut StdRng::seed_from_u64(61)).unwrap();
    let z =
        TwoLayerNet::<f64>::with_init(d, h, k, Init::StandardNormal, &mut StdRng::seed_from_u64(61)).unwrap();
    assert_eq!(bits(n.params().as_slice()), bits(z.params().as_slice()));
}

#[test]
fn init_f32_std() {
    let net = TwoLayerNet::<f32>::with_init(400, 300, 200, Init::He, &mut StdRng::seed_from_u64(63)).unwrap();
    let w1 = net.w1().mapv(f64::from);
    let (_, std) = mean_std(w1.view());
    let sigma = (2.0 / 400.0f64).sqrt();
    assert!((std / sigma - 1.0).abs() < 0.05, "f32 He w1: {std} vs {sigma}");
    assert!(net.b1().iter().all(|&b| b == 0.0));
}

/// A σ outside its domain is refused where it enters, with a typed error and before any draw,
/// rather than building a network of NaN or ∞ weights that no step can train and no
/// checkpoint can hold: NaN, ∞ and negative σ, and a σ finite in f64 but whose draws are not
/// finite in f32.
#[test]
fn a_sigma_outside_its_domain_is_refused() {
    use two_layer_net::Error;
    for std in [f64::NAN, f64::INFINITY, -0.5] {
        let mut rng = StdRng::seed_from_u64(0);
        let e = TwoLayerNet::<f64>::with_init(2, 3, 1, Init::Normal { std }, &mut rng).unwrap_err();
        assert!(matches!(e, Error::InvalidSetting { setting: "init", .. }), "{std}: {e:?}");
        // No draw was taken: the generator is where it started.
        let mut fresh = StdRng::seed_from_u64(0);
        assert_eq!(
            two_layer_net::rand::Rng::next_u64(&mut rng),
            two_layer_net::rand::Rng::next_u64(&mut fresh)
        );
    }
    let e = TwoLayerNet::<f32>::with_init(2, 3, 1, Init::Normal { std: 1e39 }, &mut StdRng::seed_from_u64(0));
    assert!(matches!(e, Err(Error::InvalidSetting { setting: "init", .. })), "{e:?}");
    assert!(
        TwoLayerNet::<f32>::with_init(2, 3, 1, Init::Normal { std: 0.0 }, &mut StdRng::seed_from_u64(0))
            .is_ok()
    );
}
