//! Client assertions (RFC 7523, `private_key_jwt`): a short-lived JWT signed with the client's
//! private key, sent to the token endpoint instead of a secret.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};

use super::JwtSigningAlg;
use crate::secret::Secret;

/// How long an assertion is valid: long enough for one token request.
const LIFETIME_SECS: u64 = 300;

/// A private key ready to sign assertions.
pub(super) enum AssertionKey {
    Es256(EcdsaKeyPair),
    Rs256(RsaKeyPair),
}

impl std::fmt::Debug for AssertionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AssertionKey::Es256(_) => "AssertionKey(ES256, <redacted>)",
            AssertionKey::Rs256(_) => "AssertionKey(RS256, <redacted>)",
        })
    }
}

/// The DER inside the first PEM block, and the block's label.
fn pem_der(pem: &str) -> Result<(String, Vec<u8>), String> {
    let begin = pem
        .find("-----BEGIN ")
        .ok_or("it is not PEM (no -----BEGIN line)")?;
    let rest = &pem[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("its BEGIN line is cut short")?;
    let label = rest[..label_end].to_owned();
    let body_start = label_end + 5;
    let end = rest
        .find(&format!("-----END {label}-----"))
        .ok_or_else(|| format!("it has no -----END {label}----- line"))?;
    let b64: String = rest[body_start..end]
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = STANDARD
        .decode(b64)
        .map_err(|e| format!("its base64 does not decode ({e})"))?;
    Ok((label, der))
}

impl AssertionKey {
    /// Reads a PKCS #8 PEM private key (`-----BEGIN PRIVATE KEY-----`; for RS256 also a
    /// PKCS #1 `RSA PRIVATE KEY`) for `alg`. The error says what is wrong in plain words.
    pub(super) fn from_pem(pem: &Secret, alg: JwtSigningAlg) -> Result<AssertionKey, String> {
        let (label, der) = pem_der(pem.expose())?;
        let rng = SystemRandom::new();
        match (alg, label.as_str()) {
            (JwtSigningAlg::Es256, "PRIVATE KEY") => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
                    .map(AssertionKey::Es256)
                    .map_err(|_| "it is not a P-256 (ES256) private key".to_owned())
            }
            (JwtSigningAlg::Rs256, "PRIVATE KEY") => RsaKeyPair::from_pkcs8(&der)
                .map(AssertionKey::Rs256)
                .map_err(|e| format!("it is not an RSA private key ring accepts ({e})")),
            (JwtSigningAlg::Rs256, "RSA PRIVATE KEY") => RsaKeyPair::from_der(&der)
                .map(AssertionKey::Rs256)
                .map_err(|e| format!("it is not an RSA private key ring accepts ({e})")),
            (_, other) => Err(format!(
                "it holds a {other:?} block; convert the key to PKCS #8 \
                 (openssl pkcs8 -topk8 -nocrypt -in key.pem -out key-pkcs8.pem)"
            )),
        }
    }

    fn alg(&self) -> &'static str {
        match self {
            AssertionKey::Es256(_) => "ES256",
            AssertionKey::Rs256(_) => "RS256",
        }
    }

    /// A fresh assertion: `iss` and `sub` the client id, `aud` the authorization server.
    pub(super) fn sign(&self, client_id: &str, audience: &str) -> Result<String, String> {
        let rng = SystemRandom::new();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut jti = [0u8; 16];
        ring::rand::SecureRandom::fill(&rng, &mut jti).map_err(|_| "no randomness")?;
        let header = serde_json::json!({"alg": self.alg(), "typ": "JWT"});
        let claims = serde_json::json!({
            "iss": client_id,
            "sub": client_id,
            "aud": audience,
            "iat": now,
            "exp": now + LIFETIME_SECS,
            "jti": URL_SAFE_NO_PAD.encode(jti),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = match self {
            AssertionKey::Es256(key) => key
                .sign(&rng, signing_input.as_bytes())
                .map_err(|_| "signing failed")?
                .as_ref()
                .to_vec(),
            AssertionKey::Rs256(key) => {
                let mut sig = vec![0u8; key.public().modulus_len()];
                key.sign(&RSA_PKCS1_SHA256, &rng, signing_input.as_bytes(), &mut sig)
                    .map_err(|_| "signing failed")?;
                sig
            }
        };
        Ok(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_in_the_wrong_shape_are_refused_in_plain_words() {
        let not_pem = AssertionKey::from_pem(&Secret::new("hello"), JwtSigningAlg::Es256);
        assert!(not_pem.unwrap_err().contains("not PEM"));
        let sec1 = "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n";
        let err = AssertionKey::from_pem(&Secret::new(sec1), JwtSigningAlg::Es256).unwrap_err();
        assert!(
            err.contains("PKCS #8") && err.contains("openssl pkcs8"),
            "{err}"
        );
    }

    #[test]
    fn an_es256_assertion_verifies_with_the_public_key() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let pem = format!(
            "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
            STANDARD.encode(pkcs8.as_ref())
        );
        let key = AssertionKey::from_pem(&Secret::new(pem), JwtSigningAlg::Es256).unwrap();
        let jwt = key.sign("ci-bot", "https://as.example").unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "ci-bot");
        assert_eq!(claims["sub"], "ci-bot");
        assert_eq!(claims["aud"], "https://as.example");
        let AssertionKey::Es256(pair) = &key else {
            unreachable!()
        };
        let public = ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_FIXED,
            ring::signature::KeyPair::public_key(pair).as_ref().to_vec(),
        );
        let signed = format!("{}.{}", parts[0], parts[1]);
        public
            .verify(
                signed.as_bytes(),
                &URL_SAFE_NO_PAD.decode(parts[2]).unwrap(),
            )
            .expect("the signature verifies");
    }
}
