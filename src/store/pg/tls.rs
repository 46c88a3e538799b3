//! TLS for PostgreSQL connections with rustls (the crypto the rest of mentiondesk already
//! uses), checking the server's certificate against the system's root certificates.

use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// The connector the pool hands to the driver. With `verify` false (TLS disabled) it is never
/// used, so the system's certificates are not even read.
pub(super) fn connector(verify: bool) -> Result<MakeRustlsConnect, String> {
    let mut roots = rustls::RootCertStore::empty();
    if verify {
        let found = rustls_native_certs::load_native_certs();
        let (added, _) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            tracing::warn!(
                errors = ?found.errors,
                "no system root certificates found: a TLS connection to PostgreSQL will fail its \
                 certificate check (install ca-certificates, or set [store] tls = \"disable\" on \
                 a private network)"
            );
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("cannot set up TLS: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}
