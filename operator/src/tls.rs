//! The process-wide rustls crypto provider.

/// Chooses ring as rustls's crypto provider. kube and reqwest both use rustls, which panics when no
/// provider, or two, are available; calling this more than once is harmless.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
