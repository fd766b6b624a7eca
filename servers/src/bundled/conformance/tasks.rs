//! The fixtures of the suite's tasks-extension scenarios (SEP-2663,
//! `io.modelcontextprotocol/tasks`, `tasks-*`), on rmcp's
//! [`TaskManager`](rmcp::task_manager::TaskManager):
//!
//! * `greet`: sync-only, never a task.
//! * `slow_compute`, `protocol_error_job`, `confirm_delete`, `multi_input`: task support
//!   optional. A request that declared the tasks extension (at `initialize`, or in its
//!   `_meta` client capabilities) gets a `CreateTaskResult`; any other runs the tool
//!   synchronously.
//! * `failing_job`, `test_tool_with_task`: task support required. A request that did not
//!   declare the extension gets `-32021` naming it in `data.requiredCapabilities`.
//!
//! A task that needs the client (`confirm_delete`, `multi_input`) parks as
//! `input_required` with its questions in `tasks/get`'s `inputRequests`, and resumes when
//! `tasks/update` brings the answers. `test_tool_with_task` asks first, before any task
//! exists (an `input_required` result in the stateless era, a server-to-client request in
//! the handshake era), then runs the rest as a task.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures::FutureExt as _;
use rmcp::{
    ErrorData, RoleServer,
    handler::server::{
        tool::{InputResponses, RequestState},
        wrapper::Parameters,
    },
    model::{CallToolResponse, CallToolResult, ClientCapabilities, CreateTaskResult},
    schemars,
    service::RequestContext,
    task_manager::{TaskContext, TaskExit, TaskManager, TaskOptions},
    tool, tool_router,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{text, tool_error};
use crate::handler::{
    Handler,
    ask::{Answer, Conversation, Question, elicited},
};

/// How often a client should poll `tasks/get` (ms).
const POLL_INTERVAL_MS: u64 = 250;

/// The longest `slow_compute` sleeps (s): a test server must not hold a call for hours.
const MAX_SECONDS: f64 = 600.0;

/// Whether the request `ctx` declared the tasks extension (in its `_meta` client
/// capabilities, or at `initialize` in the handshake era).
fn tasks_declared(ctx: &RequestContext<RoleServer>) -> bool {
    ctx.client_capabilities()
        .is_some_and(|caps| caps.supports_tasks())
}

/// The `-32021` error of a tool that only runs as a task, for a request that did not
/// declare the tasks extension.
fn task_required(tool: &str) -> ErrorData {
    let mut error = ErrorData::missing_required_client_capability(
        ClientCapabilities::builder().enable_tasks().build(),
    );
    error.message = format!(
        "{tool} only runs as a task: declare the io.modelcontextprotocol/tasks extension in \
         the client capabilities (at initialize, or in the request's _meta \
         io.modelcontextprotocol/clientCapabilities)"
    )
    .into();
    error
}

/// Runs `operation` as a task of `tasks` and answers the call with its
/// `CreateTaskResult` (the task exists before the result is sent). A panic in the
/// operation settles the task as `failed` instead of leaving it `working` forever.
fn spawn_task<F, Fut>(tasks: &TaskManager, status: String, operation: F) -> CallToolResponse
where
    F: FnOnce(TaskContext) -> Fut,
    Fut: Future<Output = Result<CallToolResult, TaskExit>> + Send + 'static,
{
    let options = TaskOptions::new()
        .with_poll_interval_ms(POLL_INTERVAL_MS)
        .with_status_message(status);
    let task = tasks.spawn(options, move |ctx| {
        let running = operation(ctx);
        Box::pin(async move {
            AssertUnwindSafe(running)
                .catch_unwind()
                .await
                .unwrap_or_else(|_| {
                    Err(TaskExit::Error(ErrorData::internal_error(
                        "the task's operation panicked",
                        None,
                    )))
                })
        })
    });
    CallToolResponse::Task(CreateTaskResult::new(task))
}

/// Sleeps `seconds`, or stops as `cancelled` when `tasks/cancel` arrives first.
async fn sleep_or_cancel(ctx: &TaskContext, seconds: f64) -> Result<(), TaskExit> {
    tokio::select! {
        () = ctx.cancelled() => Err(TaskExit::Cancelled),
        () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => Ok(()),
    }
}

/// The question `confirm_delete` asks.
fn confirm_delete_question(filename: &str) -> Question {
    Question::elicit(
        format!("Delete {filename}?"),
        json!({
            "type": "object",
            "properties": { "confirm": { "type": "boolean" } },
            "required": ["confirm"]
        }),
    )
}

/// `confirm_delete`'s answer to an elicitation result.
fn confirm_delete_outcome(filename: &str, answer: &Value) -> CallToolResult {
    let (action, content) = elicited(answer);
    if action == "accept" && content["confirm"].as_bool() == Some(true) {
        text(format!("Deleted {filename}"))
    } else {
        text(format!("Kept {filename} (the user answered {action})"))
    }
}

/// One form field of `multi_input`: an elicitation asking for `field` (a string).
fn field_question(message: &str, field: &str) -> Question {
    Question::elicit(
        message,
        json!({
            "type": "object",
            "properties": { field: { "type": "string" }, "confirm": { "type": "boolean" } },
        }),
    )
}

/// Asks `question` from inside the task under `key` (the task is `input_required` until
/// `tasks/update` answers it) and returns the client's result.
async fn ask_in_task(ctx: &TaskContext, key: &str, question: Question) -> Result<Value, TaskExit> {
    let request = question.input_request().map_err(TaskExit::Error)?;
    ctx.request_input(key, request).await
}

#[derive(Deserialize, schemars::JsonSchema)]
struct GreetArgs {
    /// Who to greet.
    name: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct SlowComputeArgs {
    /// How long the computation takes, in seconds (0 for at once; at most 600).
    seconds: f64,
    /// A label echoed in the result.
    #[serde(default)]
    label: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ConfirmDeleteArgs {
    /// The file the user is asked to confirm deleting (nothing is deleted).
    filename: String,
}

#[tool_router(router = conformance_task_tools, vis = "pub(crate)")]
impl Handler {
    /// Says hello at once; never a task.
    #[tool]
    fn greet(&self, Parameters(GreetArgs { name }): Parameters<GreetArgs>) -> CallToolResult {
        text(format!("Hello, {name}!"))
    }

    /// Sleeps `seconds`, then reports done; a task when the client declared the tasks
    /// extension (settles as `cancelled` on tasks/cancel), else a plain call.
    #[tool]
    async fn slow_compute(
        &self,
        Parameters(SlowComputeArgs { seconds, label }): Parameters<SlowComputeArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !(0.0..=MAX_SECONDS).contains(&seconds) {
            return Err(ErrorData::invalid_params(
                format!("seconds must be between 0 and {MAX_SECONDS}, got {seconds}"),
                None,
            ));
        }
        let label = label.unwrap_or_else(|| "unlabelled".to_owned());
        let done = format!("slow_compute {label}: done after {seconds} s");
        if !tasks_declared(&ctx) {
            tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
            return Ok(text(done).into());
        }
        let status = format!("slow_compute {label}: computing for {seconds} s");
        Ok(spawn_task(self.tasks(), status, move |task| async move {
            sleep_or_cancel(&task, seconds).await?;
            Ok(text(done))
        }))
    }

    /// Only runs as a task (-32021 otherwise); after about 1 s the tool reports an error
    /// (`isError: true`), so the task completes with that result.
    #[tool]
    async fn failing_job(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !tasks_declared(&ctx) {
            return Err(task_required("failing_job"));
        }
        let status = "failing_job: about to fail".to_owned();
        Ok(spawn_task(self.tasks(), status, |task| async move {
            sleep_or_cancel(&task, 1.0).await?;
            Ok(tool_error("failing_job failed on purpose (a tool error)"))
        }))
    }

    /// Fails with a JSON-RPC internal error (a protocol error, not a tool error): as a task
    /// it settles as `failed` with that error inlined.
    #[tool]
    async fn protocol_error_job(
        &self,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let error = || {
            ErrorData::internal_error(
                "protocol_error_job failed on purpose (a protocol error)",
                None,
            )
        };
        if !tasks_declared(&ctx) {
            return Err(error());
        }
        let status = "protocol_error_job: about to fail".to_owned();
        Ok(spawn_task(self.tasks(), status, move |task| async move {
            sleep_or_cancel(&task, 0.2).await?;
            Err(TaskExit::Error(error()))
        }))
    }

    /// Asks the user to confirm deleting `filename` (elicitation, key `confirm`; nothing is
    /// deleted). As a task it parks `input_required` until tasks/update answers.
    #[tool]
    async fn confirm_delete(
        &self,
        Parameters(ConfirmDeleteArgs { filename }): Parameters<ConfirmDeleteArgs>,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let question = confirm_delete_question(&filename);
        if !tasks_declared(&ctx) {
            let mut conv = Conversation::new(
                &ctx,
                "tools/call confirm_delete",
                responses,
                state.as_deref(),
            )?;
            return Ok(match conv.ask("confirm", question).await? {
                Answer::Given(answer) => confirm_delete_outcome(&filename, &answer).into(),
                Answer::Pending => conv.input_required().into(),
                Answer::Failed(failure) => tool_error(failure).into(),
            });
        }
        let status = format!("confirm_delete: waiting for the user to confirm {filename}");
        Ok(spawn_task(self.tasks(), status, move |task| async move {
            let answer = ask_in_task(&task, "confirm", question).await?;
            Ok(confirm_delete_outcome(&filename, &answer))
        }))
    }

    /// Asks two questions at once (elicitation, keys `first` and `second`); as a task both
    /// are pending together and may be answered one tasks/update at a time.
    #[tool]
    async fn multi_input(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let first = field_question("First: what is your name?", "name");
        let second = field_question("Second: please confirm", "name");
        let summary = |a: &Value, b: &Value| {
            text(format!(
                "first={}, second={}",
                elicited(a).1["name"].as_str().unwrap_or("?"),
                elicited(b).1["name"].as_str().unwrap_or("?")
            ))
        };
        if !tasks_declared(&ctx) {
            let mut conv =
                Conversation::new(&ctx, "tools/call multi_input", responses, state.as_deref())?;
            let a = conv.ask("first", first).await?;
            let b = conv.ask("second", second).await?;
            return Ok(match (a, b) {
                (Answer::Given(a), Answer::Given(b)) => summary(&a, &b).into(),
                (Answer::Failed(failure), _) | (_, Answer::Failed(failure)) => {
                    tool_error(failure).into()
                }
                _ => conv.input_required().into(),
            });
        }
        let status = "multi_input: waiting for two answers".to_owned();
        Ok(spawn_task(self.tasks(), status, move |task| async move {
            let (a, b) = tokio::join!(
                ask_in_task(&task, "first", first),
                ask_in_task(&task, "second", second)
            );
            Ok(summary(&a?, &b?))
        }))
    }

    /// Only runs as a task (-32021 otherwise). Asks the user's name first (key
    /// `user_name`: an input_required result in the stateless era), then greets them from
    /// a task.
    #[tool]
    async fn test_tool_with_task(
        &self,
        InputResponses(responses): InputResponses,
        RequestState(state): RequestState,
        ctx: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = "tools/call test_tool_with_task";
        if !tasks_declared(&ctx) {
            return Err(task_required("test_tool_with_task"));
        }
        let mut conv = Conversation::new(&ctx, tool, responses, state.as_deref())?;
        let question = Question::elicit(
            "What is your name?",
            json!({
                "type": "object",
                "properties": { "name": { "type": "string" } },
                "required": ["name"]
            }),
        );
        let answer = match conv.ask("user_name", question).await? {
            Answer::Given(answer) => answer,
            Answer::Pending => return Ok(conv.input_required().into()),
            Answer::Failed(failure) => return Ok(tool_error(failure).into()),
        };
        let name = elicited(&answer).1["name"]
            .as_str()
            .unwrap_or("stranger")
            .to_owned();
        let status = format!("test_tool_with_task: greeting {name}");
        Ok(spawn_task(self.tasks(), status, move |task| async move {
            sleep_or_cancel(&task, 0.5).await?;
            Ok(text(format!("Hello, {name}! (from a task)")))
        }))
    }
}

#[cfg(test)]
mod tests {
    use rmcp::model::TaskStatus;

    use super::*;

    #[tokio::test]
    async fn a_panicking_operation_settles_its_task_as_failed() {
        let tasks = TaskManager::new();
        let response = spawn_task(&tasks, "about to panic".to_owned(), |_| async {
            if tasks_never() {
                return Ok(text("unreachable"));
            }
            panic!("the operation panics on purpose");
        });
        let CallToolResponse::Task(created) = response else {
            panic!("spawn_task answers with a CreateTaskResult");
        };
        let id = created.task.task_id;
        for _ in 0..100 {
            let task = tasks.get_task(&id).expect("the task exists");
            if task.status().is_terminal() {
                assert_eq!(task.status(), TaskStatus::Failed);
                let error = serde_json::to_value(&task).unwrap()["error"].clone();
                assert!(
                    error["message"].as_str().unwrap_or("").contains("panicked"),
                    "{error}"
                );
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the task of a panicking operation never settled");
    }

    /// False, in a way the compiler cannot see (so the operation's type is inferred).
    fn tasks_never() -> bool {
        std::hint::black_box(false)
    }
}
