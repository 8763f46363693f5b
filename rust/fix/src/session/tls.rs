//! TLS for the FIX sessions: certificates and keys read from PEM files into
//! rustls configurations (crypto by `ring`), one for an initiator
//! ([`ClientTls`]) and one for an acceptor ([`ServerTls`]), mutual TLS included.
//!
//! Everything is read and checked when the configuration is loaded, so a bad
//! path, a file without a certificate or a key that does not match its
//! certificate is a [`TlsError`] naming the file at start, never a failure on
//! the first connection.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use thiserror::Error;

/// Why a TLS configuration could not be loaded.
#[derive(Debug, Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not PEM, or holds no item of the kind expected.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The name to verify the acceptor's certificate against is not a DNS name
    /// or IP address.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
    /// A certificate was given without its key, or a key without its certificate.
    #[error("a TLS certificate needs its key and a key its certificate (got only {0})")]
    HalfIdentity(&'static str),
    /// A certificate and key that rustls refuses together (e.g. they do not match).
    #[error("cannot use the certificate {cert} with the key {key}: {reason}")]
    Identity {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// Why.
        reason: String,
    },
    /// A CA bundle that cannot verify anything (no usable certificate in it).
    #[error("the CA bundle {path} is unusable: {reason}")]
    Ca {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// The files of an initiator's TLS: the CA bundle that verifies the acceptor,
/// the name its certificate must carry, and an optional client certificate
/// (mutual TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientTlsFiles {
    /// PEM file of the certificate authorities trusted to sign the acceptor's
    /// certificate.
    pub ca_file: PathBuf,
    /// The DNS name or IP address the acceptor's certificate must be valid for
    /// (also sent as SNI when it is a DNS name).
    pub server_name: String,
    /// PEM certificate chain presented to the acceptor (mutual TLS); needs
    /// `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file` (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// The files of an acceptor's TLS: its certificate chain and key, and an
/// optional CA bundle that verifies the initiators' certificates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTlsFiles {
    /// PEM certificate chain of the acceptor, its own certificate first.
    pub cert_file: PathBuf,
    /// PEM private key of the certificate.
    pub key_file: PathBuf,
    /// PEM file of the certificate authorities whose client certificates are
    /// accepted (mutual TLS); None asks for no client certificate.
    pub client_ca_file: Option<PathBuf>,
    /// With `client_ca_file`: whether a client without a certificate is refused
    /// (true) or let in (false; one with a bad certificate is still refused).
    pub require_client_cert: bool,
}

/// A loaded initiator TLS configuration; cheap to clone.
#[derive(Clone)]
pub struct ClientTls {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("server_name", &self.server_name)
            .field(
                "client_cert",
                &self.config.client_auth_cert_resolver.has_certs(),
            )
            .finish_non_exhaustive()
    }
}

/// A loaded acceptor TLS configuration; cheap to clone.
#[derive(Clone)]
pub struct ServerTls {
    config: Arc<ServerConfig>,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls").finish_non_exhaustive()
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path, reason: impl Into<String>) -> TlsError {
    TlsError::Pem {
        path: path.to_owned(),
        reason: reason.into(),
    }
}

/// Reads every certificate of a PEM file (at least one).
fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, format!("not PEM: {e}")))?;
    if certs.is_empty() {
        return Err(pem_error(path, "no certificate in it"));
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => pem_error(path, "no private key in it"),
        e => pem_error(path, format!("not PEM: {e}")),
    })
}

/// Reads a CA bundle into a root store (at least one usable certificate).
fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(certificates(path)?);
    if added == 0 {
        return Err(TlsError::Ca {
            path: path.to_owned(),
            reason: format!("none of its {ignored} certificates parses"),
        });
    }
    Ok(Arc::new(store))
}

fn identity_error(cert: &Path, key: &Path, e: impl std::fmt::Display) -> TlsError {
    TlsError::Identity {
        cert: cert.to_owned(),
        key: key.to_owned(),
        reason: e.to_string(),
    }
}

impl ClientTls {
    /// Loads the files of an initiator's TLS.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that cannot be read or used, or the bad
    /// server name.
    pub fn load(files: &ClientTlsFiles) -> Result<Self, TlsError> {
        let server_name = ServerName::try_from(files.server_name.clone())
            .map_err(|_| TlsError::ServerName(files.server_name.clone()))?;
        let roots = roots(&files.ca_file)?;
        let provider = provider();
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| TlsError::Ca {
                path: files.ca_file.clone(),
                reason: e.to_string(),
            })?;
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Ca {
                path: files.ca_file.clone(),
                reason: e.to_string(),
            })?
            .with_webpki_verifier(verifier);
        let config = match (&files.cert_file, &files.key_file) {
            (None, None) => builder.with_no_client_auth(),
            (Some(cert), Some(key)) => builder
                .with_client_auth_cert(certificates(cert)?, private_key(key)?)
                .map_err(|e| identity_error(cert, key, e))?,
            (Some(_), None) => return Err(TlsError::HalfIdentity("a certificate")),
            (None, Some(_)) => return Err(TlsError::HalfIdentity("a key")),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }

    /// Starts the client side of a handshake.
    pub(crate) fn connection(&self) -> Result<ClientConnection, rustls::Error> {
        ClientConnection::new(Arc::clone(&self.config), self.server_name.clone())
    }
}

impl ServerTls {
    /// Loads the files of an acceptor's TLS.
    ///
    /// # Errors
    /// [`TlsError`] naming the file that cannot be read or used.
    pub fn load(files: &ServerTlsFiles) -> Result<Self, TlsError> {
        let provider = provider();
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| identity_error(&files.cert_file, &files.key_file, e))?;
        let builder = match &files.client_ca_file {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider);
                let verifier = if files.require_client_cert {
                    verifier
                } else {
                    verifier.allow_unauthenticated()
                };
                let verifier = verifier.build().map_err(|e| TlsError::Ca {
                    path: ca.clone(),
                    reason: e.to_string(),
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(
                certificates(&files.cert_file)?,
                private_key(&files.key_file)?,
            )
            .map_err(|e| identity_error(&files.cert_file, &files.key_file, e))?;
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// Starts the server side of a handshake.
    pub(crate) fn connection(&self) -> Result<ServerConnection, rustls::Error> {
        ServerConnection::new(Arc::clone(&self.config))
    }
}
