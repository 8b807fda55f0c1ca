//! The checkpoint loader on arbitrary bytes: `from_bytes` returns a network or a typed
//! `CheckpointError`, never a panic or an abort, for every scalar type and activation.
//!
//! A network that loads must be usable and must round-trip: its parameters are finite, its
//! dimensions nonzero, a forward pass works, and `to_bytes` of it loads back to the same
//! parameters (bitwise).

#![no_main]

use libfuzzer_sys::fuzz_target;
use two_layer_net::ndarray::Array2;
use two_layer_net::{
    Activation, Error, Identity, LeakyRelu, Relu, Scalar, Sigmoid, Tanh, from_bytes, to_bytes,
};

fuzz_target!(|data: &[u8]| {
    each_activation::<f32>(data);
    each_activation::<f64>(data);
});

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
