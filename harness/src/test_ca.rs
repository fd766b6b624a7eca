//! [`TestCa`]: a throwaway certificate authority for https tests (feature `test-ca`).
//!
//! A bottom layer: imports only `errors`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::errors::{Error, Result};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A throwaway certificate authority: its certificate in a PEM file for clients to trust, and
/// server certificates it signs, for bundled servers (or yours) to serve https with. Its files
/// live in a folder of their own, removed when the `TestCa` is dropped.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{Bundled, BundledServer, Server, Session, TestCa, Transport};
/// let ca = TestCa::new()?;
/// let cert = ca.server_cert(&["127.0.0.1", "localhost"])?;
/// mcp_harness::trust_ca_file(ca.ca_file())?;
/// let server = Server::start(
///     BundledServer::new(Bundled::FastTest, Transport::StreamableHttp)
///         .tls(&cert.cert, &cert.key)
///         .spec(),
/// )
/// .await?;
/// assert!(server.url().starts_with("https://"));
/// let s = Session::connect(&server).await?;
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
pub struct TestCa {
    dir: PathBuf,
    ca_file: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl std::fmt::Debug for TestCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCa")
            .field("ca_file", &self.ca_file)
            .finish_non_exhaustive()
    }
}

/// A server certificate (PEM) and its private key (PEM, PKCS#8), signed by a [`TestCa`].
#[derive(Clone, Debug)]
pub struct ServerCert {
    /// The certificate file.
    pub cert: PathBuf,
    /// The private key file.
    pub key: PathBuf,
}

fn failed(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Invalid {
        what: "the test certificate authority".into(),
        reason: format!("{what}: {e}"),
    }
}

impl TestCa {
    /// A new authority, with its certificate written to [`ca_file`](Self::ca_file).
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when a key cannot be made or a file cannot be written.
    pub fn new() -> Result<TestCa> {
        // A name of its own: two authorities of one name would be told apart only by their
        // signatures.
        let name = format!(
            "mcp-harness test CA {}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        );
        let dir = std::env::temp_dir().join(name.replace(' ', "-"));
        std::fs::create_dir_all(&dir).map_err(|e| failed("creating its folder", e))?;
        remember(&dir);
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| failed("setting up the CA", e))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(|e| failed("making the CA key", e))?;
        let issuer = CertifiedIssuer::self_signed(params, key)
            .map_err(|e| failed("signing the CA certificate", e))?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, issuer.pem()).map_err(|e| failed("writing ca.pem", e))?;
        Ok(TestCa {
            dir,
            ca_file,
            issuer,
        })
    }

    /// The authority's certificate (PEM): what clients trust.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// A server certificate for these names (DNS names or IP addresses), valid now.
    ///
    /// # Errors
    ///
    /// [`Error::Invalid`] when a name is not a DNS name or an IP address, or a file cannot be
    /// written.
    pub fn server_cert(&self, names: &[&str]) -> Result<ServerCert> {
        self.sign(names, false)
    }

    /// A server certificate for these names that expired long ago (to test refusals).
    ///
    /// # Errors
    ///
    /// As [`server_cert`](Self::server_cert).
    pub fn expired_server_cert(&self, names: &[&str]) -> Result<ServerCert> {
        self.sign(names, true)
    }

    fn sign(&self, names: &[&str], expired: bool) -> Result<ServerCert> {
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .map_err(|e| failed("naming the server certificate", e))?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("server"),
        );
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        if expired {
            params.not_before = rcgen::date_time_ymd(2000, 1, 1);
            params.not_after = rcgen::date_time_ymd(2000, 1, 2);
        }
        let key = KeyPair::generate().map_err(|e| failed("making a server key", e))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| failed("signing the server certificate", e))?;
        let n = SEQ.fetch_add(1, Ordering::Relaxed);
        let cert_file = self.dir.join(format!("server-{n}.pem"));
        let key_file = self.dir.join(format!("server-{n}.key"));
        std::fs::write(&cert_file, cert.pem()).map_err(|e| failed("writing a certificate", e))?;
        std::fs::write(&key_file, key.serialize_pem()).map_err(|e| failed("writing a key", e))?;
        Ok(ServerCert {
            cert: cert_file,
            key: key_file,
        })
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        live_dirs().retain(|d| d != &self.dir);
    }
}

/// The folders of authorities still alive: one held in a `static` is never dropped, so its
/// folder goes at process exit instead.
static LIVE_DIRS: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());

fn live_dirs() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    LIVE_DIRS.lock().unwrap_or_else(|p| p.into_inner())
}

fn remember(dir: &Path) {
    live_dirs().push(dir.to_path_buf());
    crate::runtime::at_exit(
        crate::runtime::ExitStep::RemoveTestFiles,
        |_| remove_live_dirs(),
        remove_live_dirs,
    );
}

fn remove_live_dirs() {
    for dir in live_dirs().drain(..) {
        let _ = std::fs::remove_dir_all(dir);
    }
}
