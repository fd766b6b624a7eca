//! https for the bundled servers: a certificate chain and key in PEM files, rustls with ring,
//! handshakes done apart from the accept loop (a client that never finishes its handshake
//! holds up nobody else).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::options::{ServeError, TlsFiles};

/// How long a client may take over its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn invalid(what: &str, path: &Path, reason: impl std::fmt::Display) -> ServeError {
    ServeError::InvalidOptions(format!("the TLS {what} {}: {reason}", path.display()))
}

/// The acceptor for a certificate chain and key in PEM files.
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, ServeError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| invalid("certificate file", &files.cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| invalid("certificate file", &files.cert, e))?;
    if certs.is_empty() {
        return Err(invalid(
            "certificate file",
            &files.cert,
            "holds no `-----BEGIN CERTIFICATE-----` block",
        ));
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key).map_err(|e| invalid("key file", &files.key, e))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServeError::InvalidOptions(format!("TLS setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ServeError::InvalidOptions(format!(
                "the TLS certificate {} and key {} do not make a usable pair: {e}",
                files.cert.display(),
                files.key.display()
            ))
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener that yields connections once their TLS handshake is done.
pub(crate) struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` until `shutdown`, handshaking each connection in a task of its own.
    pub(crate) fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        shutdown: CancellationToken,
    ) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    accepted = tcp.accept() => match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            tracing::debug!("accept failed: {e}");
                            // Out of file descriptors and the like: do not spin.
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                    () = shutdown.cancelled() => return,
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept loop ended (shutdown): nothing more will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
