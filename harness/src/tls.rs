//! https for every HTTP client of the harness: rustls with the ring provider, the system's
//! trusted roots (through the platform verifier), the CA certificates in `SSL_CERT_FILE`, and
//! any CA file the user names ([`trust_ca_file`]). A refused certificate is explained: which
//! host presented it, its SHA-256 fingerprint, why it was refused and how to trust its CA.
//!
//! Trust is process-wide: a test suite that trusts its private CA trusts it for every session,
//! pool and OAuth flow it opens afterwards.
//!
//! A bottom layer: imports only `errors`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};

use crate::errors::{Error, Result};

/// The CA certificates trusted beyond the system's, and a generation counter that tells the
/// shared HTTP clients to rebuild.
struct Trusted {
    generation: u64,
    files: Vec<PathBuf>,
    certs: Vec<CertificateDer<'static>>,
}

static TRUSTED: RwLock<Trusted> = RwLock::new(Trusted {
    generation: 0,
    files: Vec::new(),
    certs: Vec::new(),
});

/// Trusts the CA certificates in a PEM file (one or more), for every HTTP client the harness
/// opens from now on, beside the system's roots and `SSL_CERT_FILE`.
///
/// ```no_run
/// mcp_harness::trust_ca_file("tests/ca.pem")?;
/// # Ok::<_, mcp_harness::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Invalid`] when the file cannot be read or holds no PEM certificate.
pub fn trust_ca_file(path: impl AsRef<Path>) -> Result<()> {
    let path = path.as_ref();
    let certs = read_ca_file(path)?;
    let mut t = TRUSTED.write().unwrap_or_else(|p| p.into_inner());
    if t.files.iter().any(|f| f == path) {
        return Ok(());
    }
    t.files.push(path.to_owned());
    t.certs.extend(certs);
    t.generation += 1;
    Ok(())
}

fn read_ca_file(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let invalid = |reason: String| Error::Invalid {
        what: format!("CA file {}", path.display()),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|e| invalid(format!("cannot be read: {e}")))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid(format!("is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(invalid(
            "holds no `-----BEGIN CERTIFICATE-----` block; give the CA's certificate in PEM".into(),
        ));
    }
    Ok(certs)
}

/// Makes ring the process's default rustls crypto provider, unless one is installed already.
///
/// The harness's own clients name their provider; this is for every other reqwest client in
/// the process (yours, rmcp's): reqwest is built here with rustls but without a provider of
/// its own (which would be aws-lc and a C toolchain), and builds no https client without one.
pub(crate) fn install_default_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: then there is a default.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// The client TLS settings for the current trust set.
fn client_config() -> std::result::Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut extra = TRUSTED
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .certs
        .clone();
    // The platform verifier reads SSL_CERT_FILE in place of the system's roots; the harness
    // promises both, so its certificates are added here too.
    if let Some(file) = std::env::var_os("SSL_CERT_FILE")
        && let Ok(certs) = read_ca_file(Path::new(&file))
    {
        extra.extend(certs);
    }
    let inner = if extra.is_empty() {
        rustls_platform_verifier::Verifier::new(provider.clone())
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider.clone())
    }
    .map_err(|e| format!("cannot set up certificate verification: {e}"))?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Explaining {
            inner: Arc::new(inner),
        }))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A reqwest client shared by the process, rebuilt when the trust set changes.
pub(crate) struct SharedClient {
    configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    current: Mutex<Option<(u64, reqwest::Client)>>,
}

impl SharedClient {
    /// A client made by `configure` (timeouts, redirects, pooling) plus the harness's TLS.
    pub(crate) const fn new(
        configure: fn(reqwest::ClientBuilder) -> reqwest::ClientBuilder,
    ) -> Self {
        SharedClient {
            configure,
            current: Mutex::new(None),
        }
    }

    /// The client for the current trust set (a cheap handle to a shared connection pool).
    pub(crate) fn get(&self) -> reqwest::Client {
        install_default_provider();
        let generation = TRUSTED.read().unwrap_or_else(|p| p.into_inner()).generation;
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((g, client)) = cur.as_ref()
            && *g == generation
        {
            return client.clone();
        }
        let builder = (self.configure)(reqwest::Client::builder());
        let client = match client_config() {
            Ok(tls) => builder.tls_backend_preconfigured(tls).build(),
            Err(e) => {
                tracing::warn!("https is unavailable: {e}");
                builder.build()
            }
        }
        .unwrap_or_else(|e| {
            tracing::warn!("cannot build the HTTP client as configured: {e}");
            reqwest::Client::new()
        });
        *cur = Some((generation, client.clone()));
        client
    }
}

/// Why an https url cannot be reached, when it is the server's certificate: one request with
/// `client`, and the refusal's words from its error (rmcp's errors do not keep the cause).
pub(crate) async fn certificate_refusal(client: &reqwest::Client, url: &str) -> Option<String> {
    if !url.starts_with("https://") {
        return None;
    }
    let sent = tokio::time::timeout(std::time::Duration::from_secs(5), client.get(url).send())
        .await
        .ok()?;
    let error = sent.err()?;
    let mut chain = error.to_string();
    let mut cur = std::error::Error::source(&error);
    while let Some(inner) = cur {
        chain.push_str(": ");
        chain.push_str(&inner.to_string());
        cur = inner.source();
    }
    refusal_in(&chain)
}

/// The refusal sentence of [`Explaining`] inside an error chain.
fn refusal_in(chain: &str) -> Option<String> {
    let start = chain.find("the certificate ")?;
    let rest = &chain[start..];
    let end = rest.find("SSL_CERT_FILE")? + "SSL_CERT_FILE".len();
    rest[..end]
        .contains(" was refused: ")
        .then(|| rest[..end].to_owned())
}

/// The platform verifier, with refusals that say which certificate and why.
#[derive(Debug)]
struct Explaining {
    inner: Arc<rustls_platform_verifier::Verifier>,
}

/// A refused server certificate, in words.
#[derive(Debug)]
struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The SHA-256 fingerprint of a certificate, as `openssl x509 -fingerprint -sha256` prints it.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    ring::digest::digest(&ring::digest::SHA256, cert.as_ref())
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn why(e: &CertificateError, host: &str) -> String {
    match e {
        CertificateError::UnknownIssuer => "it is signed by an authority that is not trusted \
             here (a private or self-signed CA?)"
            .into(),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!("it is not valid for the name `{host}`")
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "it has expired".into()
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "it is not valid yet (check the clocks)".into()
        }
        CertificateError::Revoked => "it has been revoked".into(),
        CertificateError::BadSignature => "its signature does not verify".into(),
        CertificateError::BadEncoding => "it is not a well-formed certificate".into(),
        CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
            "it is not meant for TLS servers".into()
        }
        other => format!("{other}"),
    }
}

impl ServerCertVerifier for Explaining {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|e| match e {
                rustls::Error::InvalidCertificate(ce) => {
                    let host = server_name.to_str();
                    let text = format!(
                        "the certificate {host} presented (SHA-256 {}) was refused: {}; to trust \
                         its CA, give the CA's PEM file to `mcp_harness::trust_ca_file`, \
                         `ca_file` in the config file, `--cacert` on the command line, or \
                         SSL_CERT_FILE",
                        fingerprint(end_entity),
                        why(&ce, &host)
                    );
                    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(
                        Arc::new(Refused(text)),
                    )))
                }
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_file_without_certificates_is_refused_in_plain_words() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let e = trust_ca_file(&empty).unwrap_err().to_string();
        assert!(
            e.contains("holds no `-----BEGIN CERTIFICATE-----` block"),
            "{e}"
        );
        let e = trust_ca_file(dir.path().join("missing.pem"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot be read"), "{e}");
    }

    #[test]
    fn the_shared_client_builds_with_the_system_roots() {
        static C: SharedClient = SharedClient::new(|b| b);
        let _ = C.get();
        assert!(C.current.lock().unwrap().is_some());
    }
}
