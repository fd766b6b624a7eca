//! What the client side of a session answers when the server asks it something: elicitation,
//! sampling and roots, scripted by the test ([`ClientAnswers`]), and a record of what was asked.

use std::fmt;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// How the client answers an elicitation (`elicitation/create`).
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum ElicitationAnswer {
    /// `decline` (the default: a test that scripted nothing declines, and can see what was
    /// asked with [`Session::asked`](crate::Session::asked)).
    #[default]
    Decline,
    /// `cancel`.
    Cancel,
    /// `accept` with this content (a JSON object).
    Accept(Value),
    /// `accept` with the `default` of every field of the requested schema that has one.
    AcceptDefaults,
}

type Sampler = Arc<dyn Fn(&Value) -> String + Send + Sync>;

/// The answers a session's client side gives to the server's questions.
///
/// Elicitation, sampling and roots are advertised as client capabilities, so servers may ask;
/// what is not scripted is declined (elicitation), refused (sampling: error -1, "the user
/// rejected the request") or empty (roots). Every question is recorded, answered or not.
///
/// ```no_run
/// # mcp_harness::run(async {
/// use mcp_harness::{ClientAnswers, ElicitationAnswer, Session, Target};
/// let answers = ClientAnswers::new()
///     .elicitation(ElicitationAnswer::Accept(serde_json::json!({"username": "alice"})))
///     .sampling_text("4")
///     .root("file:///tmp/project", "project");
/// let s = Session::builder(Target::Http("http://127.0.0.1:4000/mcp".into()))
///     .answers(answers)
///     .connect()
///     .await?;
/// # Ok::<_, mcp_harness::Error>(()) });
/// ```
#[derive(Clone, Default)]
pub struct ClientAnswers {
    elicitation: ElicitationAnswer,
    sampling: Option<Sampler>,
    roots: Vec<(String, Option<String>)>,
}

impl fmt::Debug for ClientAnswers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAnswers")
            .field("elicitation", &self.elicitation)
            .field("sampling", &self.sampling.is_some())
            .field("roots", &self.roots)
            .finish()
    }
}

impl ClientAnswers {
    /// Nothing scripted: declines elicitations, refuses sampling, lists no roots.
    pub fn new() -> Self {
        Self::default()
    }

    /// How to answer every elicitation.
    pub fn elicitation(mut self, answer: ElicitationAnswer) -> Self {
        self.elicitation = answer;
        self
    }

    /// Answers every sampling request with this text (model `mcp-harness`).
    pub fn sampling_text(self, text: impl Into<String>) -> Self {
        let text = text.into();
        self.sampling(move |_| text.clone())
    }

    /// Answers every sampling request with the text `f` computes from its params
    /// (`messages`, `maxTokens`, ...).
    pub fn sampling(mut self, f: impl Fn(&Value) -> String + Send + Sync + 'static) -> Self {
        self.sampling = Some(Arc::new(f));
        self
    }

    /// Adds a root to the answer to `roots/list`.
    pub fn root(mut self, uri: impl Into<String>, name: impl Into<String>) -> Self {
        self.roots.push((uri.into(), Some(name.into())));
        self
    }

    /// The answer to `method` with `params`: the result as JSON, or an error message.
    pub(super) fn answer(&self, method: &str, params: &Value) -> Result<Value, String> {
        match method {
            "elicitation/create" => Ok(match &self.elicitation {
                ElicitationAnswer::Decline => json!({"action": "decline"}),
                ElicitationAnswer::Cancel => json!({"action": "cancel"}),
                ElicitationAnswer::Accept(content) => {
                    json!({"action": "accept", "content": content})
                }
                ElicitationAnswer::AcceptDefaults => {
                    let defaults: serde_json::Map<String, Value> =
                        params["requestedSchema"]["properties"]
                            .as_object()
                            .into_iter()
                            .flatten()
                            .filter_map(|(k, v)| v.get("default").map(|d| (k.clone(), d.clone())))
                            .collect();
                    json!({"action": "accept", "content": defaults})
                }
            }),
            "sampling/createMessage" => match &self.sampling {
                Some(f) => Ok(json!({
                    "role": "assistant",
                    "content": {"type": "text", "text": f(params)},
                    "model": "mcp-harness",
                    "stopReason": "endTurn",
                })),
                None => Err(
                    "the user rejected the request (no sampling answer is scripted: \
                             see ClientAnswers::sampling)"
                        .into(),
                ),
            },
            "roots/list" => Ok(json!({
                "roots": self.roots.iter().map(|(uri, name)| json!({"uri": uri, "name": name})).collect::<Vec<_>>()
            })),
            other => Err(format!("mcp-harness does not answer `{other}`")),
        }
    }
}

/// What the server asked a session's client side, in order: `{"method": .., "params": ..}`.
pub(super) type Asked = Arc<Mutex<Vec<Value>>>;
