//! The authorization server metadata document (RFC 8414, also served as OIDC discovery).

use std::sync::Arc;

use axum::{
    Json,
    extract::State,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::provider::Provider;

impl Provider {
    fn metadata(&self) -> Value {
        let issuer = self.issuer();
        let named = self
            .config
            .misbehave
            .metadata_issuer
            .as_deref()
            .unwrap_or(issuer);
        let mut doc = json!({
            "issuer": named,
            "authorization_endpoint": format!("{issuer}/authorize"),
            "token_endpoint": format!("{issuer}/token"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported":
                ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["ES256", "RS256"],
            "scopes_supported": self.config.scopes_supported,
            "authorization_response_iss_parameter_supported": true,
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
        });
        if self.config.client_id_metadata_documents {
            doc["client_id_metadata_document_supported"] = json!(true);
        }
        if self.config.allow_registration {
            doc["registration_endpoint"] = json!(format!("{issuer}/register"));
        }
        doc
    }
}

pub(super) async fn metadata(State(p): State<Arc<Provider>>) -> Response {
    Json(p.metadata()).into_response()
}
