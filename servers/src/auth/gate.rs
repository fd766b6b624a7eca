//! The credential check in front of every HTTP transport (streamable HTTP and legacy SSE):
//! static bearer tokens, HS256/RS256 JWTs or OAuth access tokens, the 401/403 answers with
//! `WWW-Authenticate`, and the protected-resource metadata document (RFC 9728).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Router,
    extract::State,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, errors::ErrorKind};
use serde_json::json;

use crate::{
    env::{BEARER_TOKENS_ENV, JWT_PUBLIC_KEY_ENV, JWT_SECRET_ENV},
    options::{AuthMode, ServeError},
};

use super::{oauth, reject::Reject};

/// The verified auth configuration of a running server.
#[allow(clippy::enum_variant_names)] // `OAuth` is the name of the thing.
pub(crate) enum Auth {
    None,
    Bearer(HashMap<String, Arc<str>>),
    /// One key per accepted algorithm (HS256 from a secret, RS256 from a public key).
    Jwt(Vec<(Algorithm, DecodingKey)>),
    OAuth(Arc<oauth::Provider>),
}

#[derive(serde::Deserialize)]
struct Claims {
    #[serde(default)]
    sub: Option<String>,
}

impl Auth {
    /// Reads the secrets `mode` needs from the environment.
    pub(crate) fn from_env(mode: AuthMode) -> Result<Self, ServeError> {
        match mode {
            AuthMode::None => Ok(Auth::None),
            AuthMode::Bearer => {
                let secret = |problem: String| ServeError::Secret {
                    mode,
                    var: BEARER_TOKENS_ENV,
                    problem,
                };
                let raw = std::env::var(BEARER_TOKENS_ENV).map_err(|_| {
                    secret(
                        "it is not set (or not UTF-8); set it to \"token1=subject1,token2=subject2\""
                            .into(),
                    )
                })?;
                let mut tokens = HashMap::new();
                for (i, entry) in raw.split(',').map(str::trim).enumerate() {
                    if entry.is_empty() {
                        continue;
                    }
                    let Some((token, subject)) = entry.split_once('=') else {
                        return Err(secret(format!(
                            "entry {} has no '=': expected \"token=subject\"",
                            i + 1
                        )));
                    };
                    let (token, subject) = (token.trim(), subject.trim());
                    if token.is_empty() {
                        return Err(secret(format!("entry {} has an empty token", i + 1)));
                    }
                    tokens.insert(token.to_owned(), Arc::<str>::from(subject));
                }
                if tokens.is_empty() {
                    return Err(secret(
                        "it lists no token; expected \"token1=subject1,token2=subject2\"".into(),
                    ));
                }
                Ok(Auth::Bearer(tokens))
            }
            AuthMode::Jwt => {
                let mut keys = Vec::new();
                if let Some(secret) = std::env::var(JWT_SECRET_ENV).ok().filter(|s| !s.is_empty()) {
                    keys.push((
                        Algorithm::HS256,
                        DecodingKey::from_secret(secret.as_bytes()),
                    ));
                }
                if let Some(pem) = std::env::var(JWT_PUBLIC_KEY_ENV)
                    .ok()
                    .filter(|s| !s.trim().is_empty())
                {
                    keys.push((Algorithm::RS256, rsa_public_key(mode, &pem)?));
                }
                if keys.is_empty() {
                    return Err(ServeError::Secret {
                        mode,
                        var: JWT_SECRET_ENV,
                        problem: format!(
                            "neither it (the HS256 secret) nor {JWT_PUBLIC_KEY_ENV} (an RS256 public key PEM) is set"
                        ),
                    });
                }
                Ok(Auth::Jwt(keys))
            }
            AuthMode::OAuth => Ok(Auth::OAuth(Arc::new(oauth::Provider::from_env()?))),
        }
    }

    /// What the server accepts, for messages.
    fn describe(&self) -> &'static str {
        match self {
            Auth::None => "nothing",
            Auth::Bearer(_) => "a bearer token",
            Auth::Jwt(_) => "a JWT",
            Auth::OAuth(_) => "an OAuth access token",
        }
    }

    /// The subject of an authorized request.
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, Reject> {
        if matches!(self, Auth::None) {
            return Ok(None);
        }
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(Reject::Missing)?
            .to_str()
            .map_err(|_| Reject::Malformed)?
            .trim();
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(Reject::Malformed),
        };
        if token.is_empty() {
            return Err(Reject::Missing);
        }
        match self {
            Auth::None => Ok(None),
            Auth::Bearer(tokens) => tokens
                .get(token)
                .map(|subject| Some(subject.clone()))
                .ok_or(Reject::Unknown),
            Auth::Jwt(keys) => {
                let alg = jsonwebtoken::decode_header(token)
                    .map_err(|_| Reject::Malformed)?
                    .alg;
                let Some((alg, key)) = keys.iter().find(|(a, _)| *a == alg) else {
                    // Signed with an algorithm this server has no key for.
                    return Err(Reject::Unknown);
                };
                let mut validation = Validation::new(*alg);
                validation.required_spec_claims.clear();
                validation.validate_exp = true;
                validation.validate_aud = false;
                validation.leeway = 0;
                match jsonwebtoken::decode::<Claims>(token, key, &validation) {
                    Ok(data) => Ok(data.claims.sub.map(Arc::from)),
                    Err(e) => Err(match e.kind() {
                        ErrorKind::ExpiredSignature => Reject::Expired,
                        ErrorKind::InvalidSignature | ErrorKind::ImmatureSignature => {
                            Reject::Unknown
                        }
                        _ => Reject::Malformed,
                    }),
                }
            }
            Auth::OAuth(provider) => provider.check_access_token(token).map(Some),
        }
    }
}

/// The auth check of one server: the accepted credentials plus the precomputed challenge
/// and metadata.
pub(crate) struct Gate {
    pub(crate) auth: Auth,
    /// `resource_metadata="..."` (and the scope, for OAuth), precomputed.
    challenge_params: String,
    /// The protected-resource metadata document (its `authorization_servers` follow the
    /// provider when it moves).
    metadata: serde_json::Value,
}

impl Gate {
    /// `base` is `http://host:port`, `resource_path` the MCP endpoint's path.
    pub(crate) fn new(auth: Auth, base: &str, resource_path: &str, server: &str) -> Self {
        let resource = format!("{base}{resource_path}");
        // The root document describes this server's one resource (also served suffixed with
        // the resource path, the RFC 9728 form).
        let mut challenge_params =
            format!("resource_metadata=\"{base}/.well-known/oauth-protected-resource\"");
        let mut metadata = json!({
            "resource": resource,
            "authorization_servers": [],
            "bearer_methods_supported": ["header"],
            "resource_name": format!("mcp-harness {server}"),
        });
        if let Auth::OAuth(provider) = &auth {
            provider.set_issuer(base, &resource);
            if let Some(named) = provider.misbehaving_prm_resource() {
                metadata["resource"] = json!(named);
            }
            metadata["authorization_servers"] = json!([provider.issuer()]);
            metadata["scopes_supported"] = json!(provider.scopes_supported());
            if let Some(scope) = provider.challenge_scope() {
                challenge_params.push_str(&format!(", scope=\"{scope}\""));
            }
        }
        Gate {
            auth,
            challenge_params,
            metadata,
        }
    }

    /// The subject of an authorized request, or the 401/403 response to send.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check(&self, headers: &HeaderMap) -> Result<Option<Arc<str>>, Response> {
        self.auth.check(headers).map_err(|r| self.refuse(r))
    }

    /// 401 (403 for a missing scope) with `WWW-Authenticate: Bearer ...` (RFC 6750: an
    /// `error` only when a token was sent) and a JSON body whose `reason` names the problem.
    fn refuse(&self, reject: Reject) -> Response {
        let message = match (reject, &self.auth) {
            (Reject::Missing, _) => "no bearer token: send \"Authorization: Bearer <token>\"",
            (Reject::Unknown, Auth::Jwt(_)) => "the JWT does not verify with the server's keys",
            (Reject::Unknown, Auth::OAuth(_)) => "the access token is not one this server issued",
            (Reject::Unknown, _) => "the bearer token is not one this server knows",
            (Reject::Malformed, Auth::Jwt(_)) => "the Authorization header is not \"Bearer <JWT>\"",
            (Reject::Malformed, _) => "the Authorization header is not \"Bearer <token>\"",
            (Reject::Expired, Auth::Jwt(_)) => "the JWT has expired (exp is in the past)",
            (Reject::Expired, _) => "the access token has expired",
            (Reject::Scope, _) => "the access token lacks a required scope",
        };
        tracing::debug!(
            reason = reject.reason(),
            accepts = self.auth.describe(),
            "refused an HTTP request"
        );
        // Tests observe refusals from outside (never the token itself).
        crate::events::record("refused", |o| {
            o.insert("reason".to_owned(), reject.reason().into());
        });
        let challenge = match reject {
            Reject::Missing => format!("Bearer {}", self.challenge_params),
            Reject::Scope => format!(
                "Bearer error=\"insufficient_scope\", error_description=\"{}: {message}\", {}",
                reject.reason(),
                self.challenge_params
            ),
            _ => format!(
                "Bearer error=\"invalid_token\", error_description=\"{}: {message}\", {}",
                reject.reason(),
                self.challenge_params
            ),
        };
        let body = json!({
            "error": match reject {
                Reject::Missing => "unauthorized",
                Reject::Scope => "insufficient_scope",
                _ => "invalid_token",
            },
            "reason": reject.reason(),
            "message": message,
        })
        .to_string();
        let status = if reject == Reject::Scope {
            StatusCode::FORBIDDEN
        } else {
            StatusCode::UNAUTHORIZED
        };
        (
            status,
            [
                (
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_str(&challenge).unwrap_or(HeaderValue::from_static("Bearer")),
                ),
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                ),
            ],
            body,
        )
            .into_response()
    }

    /// The well-known routes of this server: protected-resource metadata (at the root and
    /// suffixed with the resource path) and, with OAuth, the authorization server.
    pub(crate) fn routes<S: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
        resource_path: &str,
    ) -> Router<S> {
        let well_known = "/.well-known/oauth-protected-resource";
        let doc = {
            let gate = self.clone();
            move || {
                let gate = gate.clone();
                async move { metadata_doc(State(gate)).await }
            }
        };
        let mut router = Router::new().route(well_known, get(doc.clone()));
        let suffixed = format!("{well_known}{}", resource_path.trim_end_matches('/'));
        if suffixed != well_known {
            router = router.route(&suffixed, get(doc));
        }
        if let Auth::OAuth(provider) = &self.auth {
            router = router.merge(oauth::routes(provider.clone()));
        }
        router
    }
}

async fn metadata_doc(State(gate): State<Arc<Gate>>) -> Response {
    let mut doc = gate.metadata.clone();
    if let Auth::OAuth(provider) = &gate.auth {
        doc["authorization_servers"] = json!([provider.current_issuer()]);
    }
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.to_string(),
    )
        .into_response()
}

/// An RSA public key in PEM, for RS256.
#[cfg(feature = "jwt-rs256")]
fn rsa_public_key(mode: AuthMode, pem: &str) -> Result<DecodingKey, ServeError> {
    DecodingKey::from_rsa_pem(pem.as_bytes()).map_err(|e| ServeError::Secret {
        mode,
        var: JWT_PUBLIC_KEY_ENV,
        problem: format!(
            "it is not an RSA public key in PEM (\"-----BEGIN PUBLIC KEY-----\"): {e}"
        ),
    })
}

/// Without the `jwt-rs256` feature there is no PEM parser: say how to get one.
#[cfg(not(feature = "jwt-rs256"))]
fn rsa_public_key(mode: AuthMode, _pem: &str) -> Result<DecodingKey, ServeError> {
    Err(ServeError::Secret {
        mode,
        var: JWT_PUBLIC_KEY_ENV,
        problem: "RS256 keys need the `jwt-rs256` feature of mcp-harness (or \
                  mcp-harness-servers), which this program is built without; the mcp-harness \
                  command line has it"
            .into(),
    })
}
