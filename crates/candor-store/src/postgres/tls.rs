//! TLS to PostgreSQL, by rustls, with libpq's meaning of the URL's `sslmode`:
//! - `disable`: no TLS;
//! - `prefer` (the default) and `require`: TLS (`prefer` falls back to plain text where the
//!   server offers none); the server's certificate is verified where a CA is given
//!   (`sslrootcert=PATH` in the URL, or `PGSSLROOTCERT`), else the link is encrypted but its
//!   peer not checked, as libpq does;
//! - `verify-ca` and `verify-full`: TLS, and the certificate and host name verified against the
//!   given CA or the public roots; one that does not verify fails the connection.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres_rustls::MakeRustlsConnect;

/// A store URL with candor's own TLS settings taken out, and the connector they make.
pub struct Tls {
    /// The URL the driver reads: `sslrootcert` removed, `verify-*` as `require`.
    pub url: String,
    pub connector: MakeRustlsConnect,
    /// The CA file given, if any, for error messages.
    pub root_cert: Option<String>,
}

/// Reads the TLS settings of `url`. Errors name the file or the setting at fault.
pub fn tls(url: &str) -> Result<Tls, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut root_cert = None;
    let mut verify = false;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match (key, value) {
            ("sslrootcert", path) => root_cert = Some(decode(path)),
            ("sslmode", "verify-ca" | "verify-full") => {
                verify = true;
                kept.push("sslmode=require".to_string());
            }
            _ => kept.push(pair.to_string()),
        }
    }
    let root_cert = root_cert.or_else(|| std::env::var("PGSSLROOTCERT").ok());
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let config = match (verify, &root_cert) {
        (false, None) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
            .with_no_client_auth(),
        (_, root_cert) => builder
            .with_root_certificates(roots(root_cert.as_deref())?)
            .with_no_client_auth(),
    };
    let url = match kept.is_empty() {
        true => base.to_string(),
        false => format!("{base}?{}", kept.join("&")),
    };
    Ok(Tls {
        url,
        connector: MakeRustlsConnect::new(config),
        root_cert,
    })
}

/// The public roots, and the certificates of the CA file where one is given.
fn roots(root_cert: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let Some(path) = root_cert else {
        return Ok(roots);
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("cannot read the CA certificates in {path} (sslrootcert): {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path} (sslrootcert) holds no PEM certificate"));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in {path} (sslrootcert) is not usable: {e}"))?;
    }
    Ok(roots)
}

/// libpq's `require` without a CA: the link is encrypted and the handshake's signatures are
/// checked, but the certificate's issuer and name are not.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Percent-decoding of a URL query value (a path may hold spaces or slashes written as %2F).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candor_reads_its_own_settings_and_leaves_the_rest_to_the_driver() {
        let t = tls("postgres://u@h/db?sslmode=verify-full&application_name=x").unwrap();
        assert_eq!(
            t.url,
            "postgres://u@h/db?sslmode=require&application_name=x"
        );
        assert_eq!(tls("postgres://u@h/db").unwrap().url, "postgres://u@h/db");
        let missing = tls("postgres://u@h/db?sslrootcert=%2Fno%2Fsuch.pem")
            .err()
            .unwrap();
        assert!(
            missing.contains("/no/such.pem") && missing.contains("sslrootcert"),
            "{missing}"
        );
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let url = format!("postgres://u@h/db?sslrootcert={}", empty.display());
        let err = tls(&url).err().unwrap();
        assert!(err.contains("holds no PEM certificate"), "{err}");
    }
}
