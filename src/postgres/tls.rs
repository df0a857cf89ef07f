//! TLS for PostgreSQL connections (`ssl: true | { ca, cert, key, rejectUnauthorized }`, or
//! `sslmode=require` in the URL), with rustls: the system's web roots unless `ca` is given.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::TlsConfig;
use crate::core::{Error, ErrorKind};

fn config_error(what: &str) -> Error {
  Error::new(ErrorKind::Config, format!("connection.ssl: {what}"))
}

pub fn connector(t: &TlsConfig) -> Result<MakeRustlsConnect, Error> {
  let provider = Arc::new(rustls::crypto::ring::default_provider());
  let builder = ClientConfig::builder_with_provider(provider.clone())
    .with_safe_default_protocol_versions()
    .map_err(|_| config_error("no TLS protocol version available"))?;
  let builder = if t.insecure {
    builder
      .dangerous()
      .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
  } else {
    let mut roots = RootCertStore::empty();
    match &t.ca {
      Some(pem) => {
        for cert in CertificateDer::pem_slice_iter(pem) {
          let cert = cert.map_err(|_| config_error("ca is not a PEM certificate"))?;
          roots
            .add(cert)
            .map_err(|_| config_error("ca holds a certificate that cannot be used"))?;
        }
        if roots.is_empty() {
          return Err(config_error("ca holds no certificate"));
        }
      }
      None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    builder.with_root_certificates(roots)
  };
  let config = match (&t.cert, &t.key) {
    (Some(cert), Some(key)) => {
      let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| config_error("cert is not a PEM certificate"))?;
      let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|_| config_error("key is not a PEM private key"))?;
      builder
        .with_client_auth_cert(chain, key)
        .map_err(|_| config_error("cert and key do not go together"))?
    }
    _ => builder.with_no_client_auth(),
  };
  Ok(MakeRustlsConnect::new(config))
}

/// `rejectUnauthorized: false`: any certificate, any name (tests and private networks).
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
  fn verify_server_cert(
    &self,
    _end_entity: &CertificateDer<'_>,
    _intermediates: &[CertificateDer<'_>],
    _server_name: &ServerName<'_>,
    _ocsp_response: &[u8],
    _now: UnixTime,
  ) -> Result<ServerCertVerified, rustls::Error> {
    Ok(ServerCertVerified::assertion())
  }

  fn verify_tls12_signature(
    &self,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
  ) -> Result<HandshakeSignatureValid, rustls::Error> {
    rustls::crypto::verify_tls12_signature(
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
    rustls::crypto::verify_tls13_signature(
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
