//! The checkpoint loaders on arbitrary bytes: `from_bytes` returns a network, and
//! `TrainingState::from_bytes` a training state, or a typed `CheckpointError`, never a panic
//! or an abort, for every scalar type and activation.
//!
//! A network that loads must be usable and must round-trip: its parameters are finite, its
//! dimensions nonzero, a forward pass works, and `to_bytes` of it loads back to the same
//! parameters (bitwise). A training state that loads round-trips through `to_bytes`, and
//! restoring its `net` and `opt` entries into a 1→1→1 network and an Adam either works or is
//! a typed error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use two_layer_net::ndarray::Array2;
use two_layer_net::{
    Activation, Adam, Error, Identity, LeakyRelu, Relu, Scalar, Sigmoid, Tanh, TrainingState, TwoLayerNet,
    from_bytes, to_bytes,
};

fuzz_target!(|data: &[u8]| {
    each_activation::<f32>(data);
    each_activation::<f64>(data);
    training_state::<f32>(data);
    training_state::<f64>(data);
});

fn training_state<F: Scalar>(data: &[u8]) {
    let state = match TrainingState::<F>::from_bytes(data) {
        Ok(state) => state,
        Err(e) => {
            let _ = (e.to_string(), format!("{e:?}"));
            return;
        }
    };
    let bytes = state.to_bytes().expect("to_bytes of a loaded state");
    assert_eq!(TrainingState::<F>::from_bytes(&bytes).expect("from_bytes of to_bytes"), state, "round trip");
    let mut net = TwoLayerNet::<F>::new(
        1,
        1,
        1,
        &mut <two_layer_net::rand::rngs::StdRng as two_layer_net::rand::SeedableRng>::seed_from_u64(0),
    )
    .expect("a 1x1x1 net");
    let _ = state.restore_net("net", &mut net).map_err(|e| e.to_string());
    assert!(net.params().as_slice().iter().all(|v| v.is_finite()));
    let _ = state.restore_optimizer("opt", &mut Adam::new(F::cast(0.1))).map_err(|e| e.to_string());
}

fn each_activation<F: Scalar>(data: &[u8]) {
    load::<F, Relu>(data);
    load::<F, LeakyRelu>(data);
    load::<F, Sigmoid>(data);
    load::<F, Tanh>(data);
    load::<F, Identity>(data);
}

fn bits<F: Scalar>(s: &[F]) -> Vec<u64> {
    s.iter().map(|v| v.as_f64().to_bits()).collect()
}

fn load<F: Scalar, A: Activation + Default>(data: &[u8]) {
    let net = match from_bytes::<F, A>(data) {
        Ok(net) => net,
        Err(e) => {
            // The error's messages must not panic either.
            let _ = (e.to_string(), format!("{e:?}"), std::error::Error::source(&e).map(|s| s.to_string()));
            return;
        }
    };
    let (d, h, k) = (net.input_dim(), net.hidden_dim(), net.output_dim());
    assert!(d > 0 && h > 0 && k > 0, "a loaded network has a zero dimension: {d}, {h}, {k}");
    assert!(
        net.params().as_slice().iter().all(|v| v.is_finite()),
        "a loaded network has a non-finite parameter"
    );

    // Round trip: the canonical bytes of the loaded network load back to the same network.
    let bytes = to_bytes(&net).expect("to_bytes of a loaded (finite) network");
    let back = from_bytes::<F, A>(&bytes).expect("from_bytes of to_bytes");
    assert_eq!(
        bits(back.params().as_slice()),
        bits(net.params().as_slice()),
        "round trip changed parameters"
    );

    // The network is usable: a forward pass on a small batch succeeds (its values may overflow
    // for extreme parameters, which forward_checked reports as a typed error).
    let mut net = net;
    let x = Array2::<F>::zeros((2, d));
    let n_out = net.forward(x.view()).expect("forward on a loaded network").dim();
    assert_eq!(n_out, (2, k));
    match net.forward_checked(x.view()) {
        Ok(_) | Err(Error::NonFinite { what: "yhat" }) => {}
        Err(e) => panic!("forward_checked on a loaded network: {e:?}"),
    }
}
