//! Finds the system OpenBLAS with pkg-config when the `openblas-system` feature is on, and
//! stops the build with an install hint instead of a linker error when it is missing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    println!("cargo:rerun-if-env-changed=DOCS_RS");
    // docs.rs builds documentation only (nothing is linked) on a machine without OpenBLAS.
    if std::env::var_os("CARGO_FEATURE_OPENBLAS_SYSTEM").is_none() || std::env::var_os("DOCS_RS").is_some() {
        return;
    }
    if let Err(e) = pkg_config::Config::new().cargo_metadata(false).probe("openblas") {
        eprintln!(
            "\ntwo-layer-net: the system OpenBLAS was not found by pkg-config ({e}).\n\
             Install it, or turn off the default `openblas-system` feature and link another CBLAS:\n\
             \x20 Debian/Ubuntu: sudo apt-get install libopenblas-dev pkg-config\n\
             \x20 Fedora:        sudo dnf install openblas-devel pkgconf-pkg-config\n\
             \x20 macOS:         brew install openblas pkg-config  (then export PKG_CONFIG_PATH=\"$(brew --prefix openblas)/lib/pkgconfig\")\n"
        );
        std::process::exit(1);
    }
}
