//! `mcp-harness check`: connect to any MCP server (`initialize` or `server/discover`), ask for
//! what the server advertises (ping in the handshake era, the lists of its tools, resources and
//! prompts), optionally call tools, and report as a table or JSON. A step that the server's
//! capabilities or the protocol era rule out is reported as skipped, with the reason.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::{TransportArg, exit, exit_code_for, ms, parse_duration, parse_header, parse_json_args};
use mcp_harness::Error;
use mcp_harness::{
    ClientAnswers, ElicitationAnswer, Era, JwtSigningAlg, OAuth, Protocol, Secret, ServerSpec,
    Session, Target, TokenEndpointAuth, Transport,
};

#[derive(clap::Args)]
pub(super) struct CheckArgs {
    /// The server's url: streamable HTTP (`http://host:port/mcp`) or, with --transport sse, the
    /// event stream (`http://host:port/sse`).
    #[arg(conflicts_with = "command")]
    url: Option<String>,
    /// A command speaking MCP on stdin/stdout, after `--`.
    #[arg(last = true, value_name = "COMMAND")]
    command: Vec<String>,
    /// How to talk to the url (default http); a command always uses stdio.
    #[arg(long, value_enum)]
    transport: Option<TransportArg>,
    /// An extra HTTP header, `Name: value` (repeatable).
    #[arg(long = "header", short = 'H', value_parser = parse_header, value_name = "K:V")]
    headers: Vec<(String, String)>,
    /// A bearer token (sent as `Authorization: Bearer T`).
    #[arg(long, env = "MCP_HARNESS_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Authorize with OAuth 2.1 first, headless: discovery from the server's 401, dynamic
    /// registration (or --oauth-client-id), authorization code + PKCE caught on a loopback
    /// callback, token exchange. The authorization server must approve without a browser.
    #[arg(long, conflicts_with = "token")]
    oauth: bool,
    /// A pre-registered OAuth client instead of dynamic registration (implies --oauth).
    #[arg(long, value_name = "ID", conflicts_with = "token")]
    oauth_client_id: Option<String>,
    /// The pre-registered client's secret (then sent with client_secret_basic).
    #[arg(
        long,
        env = "MCP_HARNESS_OAUTH_CLIENT_SECRET",
        hide_env_values = true,
        requires = "oauth_client_id",
        value_name = "SECRET"
    )]
    oauth_client_secret: Option<String>,
    /// The url of this client's ID metadata document (CIMD), used as its client id where the
    /// authorization server advertises support (else it registers dynamically). Implies
    /// --oauth.
    #[arg(long, value_name = "URL", conflicts_with = "token")]
    oauth_client_metadata_url: Option<String>,
    /// Machine to machine: the OAuth client credentials grant for the --oauth-client-id
    /// client (its secret, or its private key), no browser and no callback server.
    #[arg(long, requires = "oauth_client_id")]
    oauth_client_credentials: bool,
    /// The client's private key (PKCS #8 PEM file) to authenticate with a signed JWT
    /// assertion (private_key_jwt, RFC 7523) in the client credentials grant (implies
    /// --oauth-client-credentials). MCP_HARNESS_OAUTH_PRIVATE_KEY may hold the PEM instead.
    #[arg(
        long,
        value_name = "PEM_FILE",
        requires = "oauth_client_id",
        conflicts_with = "oauth_client_secret"
    )]
    oauth_private_key_file: Option<std::path::PathBuf>,
    /// The algorithm of the client assertion: ES256 (P-256 key) or RS256 (RSA key).
    #[arg(long, value_name = "ALG", default_value = "ES256", value_parser = parse_alg)]
    oauth_signing_alg: JwtSigningAlg,
    /// The OAuth scope to ask for (default: the challenge's, else the server's
    /// scopes_supported). Implies --oauth.
    #[arg(long, value_name = "SCOPE", conflicts_with = "token")]
    oauth_scope: Option<String>,
    /// Call this tool after listing, with JSON object arguments after a colon
    /// (`add:{"a":1,"b":2}`). Repeatable: the calls run in order, each its own step, and a
    /// failed call does not stop the next.
    #[arg(long = "call", value_parser = parse_call, value_name = "TOOL[:JSON]")]
    calls: Vec<(String, Option<Value>)>,
    /// JSON object arguments for a single --call TOOL (the same as --call TOOL:JSON).
    #[arg(long, requires = "calls", value_parser = parse_json_args, value_name = "JSON")]
    args: Option<Value>,
    /// Read this resource after listing (repeatable; before the calls).
    #[arg(long = "read", value_name = "URI")]
    reads: Vec<String>,
    /// Get this prompt after listing, with JSON object arguments after a colon
    /// (`greeting:{"name":"ada"}`). Repeatable; after the reads, before the calls.
    #[arg(long = "prompt", value_parser = parse_call, value_name = "NAME[:JSON]")]
    prompts: Vec<(String, Option<Value>)>,
    /// Print one JSON document on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// The bound on connecting and on each request (250ms, 10s, 1m).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    timeout: Duration,
    /// Trust the CA certificates in this PEM file for https (beside the system's roots and
    /// SSL_CERT_FILE); repeatable.
    #[arg(long = "cacert", value_name = "FILE")]
    ca_files: Vec<std::path::PathBuf>,
    /// The protocol era: auto (server/discover first, initialize as the fallback), stateless,
    /// handshake, or a pinned version (2026-07-28, 2025-11-25, ...). Default: MCP_HARNESS_PROTOCOL,
    /// else the handshake era at 2025-11-25.
    #[arg(long, value_parser = parse_protocol, value_name = "PROTOCOL")]
    protocol: Option<Protocol>,
    /// How to answer the server's elicitations: decline (the default), cancel, defaults (accept
    /// with the schema's defaults) or a JSON object to accept with.
    #[arg(long, value_parser = parse_elicit, value_name = "ANSWER")]
    elicit: Option<ElicitationAnswer>,
    /// Answer the server's sampling requests with this text (refused when not given).
    #[arg(long, value_name = "TEXT")]
    sample: Option<String>,
}

fn parse_elicit(s: &str) -> Result<ElicitationAnswer, String> {
    match s.trim() {
        "decline" => Ok(ElicitationAnswer::Decline),
        "cancel" => Ok(ElicitationAnswer::Cancel),
        "defaults" => Ok(ElicitationAnswer::AcceptDefaults),
        json => match serde_json::from_str::<Value>(json) {
            Ok(v @ Value::Object(_)) => Ok(ElicitationAnswer::Accept(v)),
            _ => Err(format!(
                "`{s}` is not an answer: use decline, cancel, defaults or a JSON object"
            )),
        },
    }
}

/// Parses `TOOL` or `TOOL:{...}` (JSON object arguments after the first colon that a `{`
/// follows, so that a tool name may itself hold colons).
fn parse_call(s: &str) -> Result<(String, Option<Value>), String> {
    let json_at = s
        .match_indices(':')
        .map(|(i, _)| i)
        .find(|&i| s[i + 1..].trim_start().starts_with('{'));
    let (tool, args) = match json_at {
        Some(i) => (&s[..i], Some(parse_json_args(&s[i + 1..])?)),
        None => (s, None),
    };
    if tool.trim().is_empty() {
        return Err(format!("`{s}` names no tool; use TOOL or TOOL:{{...}}"));
    }
    Ok((tool.to_owned(), args))
}

/// The calls asked for: `--args` belongs to a single `--call TOOL`.
fn calls(args: &CheckArgs) -> Result<Vec<(String, Option<Value>)>, String> {
    let mut calls = args.calls.clone();
    if let Some(a) = &args.args {
        match calls.as_mut_slice() {
            [(_, inline @ None)] => *inline = Some(a.clone()),
            _ => {
                return Err(
                    "--args gives the arguments of a single --call TOOL; with several \
                     calls, or arguments inline, write each as --call 'TOOL:{...}'"
                        .into(),
                );
            }
        }
    }
    Ok(calls)
}

pub(crate) fn parse_protocol(s: &str) -> Result<Protocol, String> {
    s.parse::<Protocol>().map_err(|e| e.to_string())
}

/// One step of the check, as reported.
struct Step {
    name: &'static str,
    outcome: Outcome,
    took: Duration,
}

enum Outcome {
    Ok(String),
    /// The server answered `-32601` (method not found).
    Unsupported,
    /// Not asked, for the reason given (not advertised, not in this era).
    Skipped(String),
    Failed(String),
}

#[derive(Default)]
struct Report {
    target: String,
    transport: &'static str,
    server: Option<(String, String)>,
    /// The negotiated protocol version and its era.
    protocol: Option<(String, String)>,
    steps: Vec<Step>,
    tools: Option<Vec<Value>>,
    resources: Option<Vec<Value>>,
    prompts: Option<Vec<Value>>,
    reads: Vec<Value>,
    prompts_got: Vec<Value>,
    calls: Vec<Value>,
    error: Option<(String, String)>,
    code: u8,
}

pub(super) fn run(args: CheckArgs) -> u8 {
    for file in &args.ca_files {
        if let Err(e) = mcp_harness::trust_ca_file(file) {
            eprintln!("mcp-harness check: --cacert: {e}");
            return exit::USAGE;
        }
    }
    let target = match target(&args) {
        Ok(t) => t,
        Err(message) => {
            eprintln!("mcp-harness check: {message}");
            return exit::USAGE;
        }
    };
    let credentials = Credentials {
        headers: args.headers.clone(),
        token: args.token.clone(),
        oauth: match oauth(&args) {
            Ok(o) => o,
            Err(message) => {
                eprintln!("mcp-harness check: {message}");
                return exit::USAGE;
            }
        },
    };
    let calls = match calls(&args) {
        Ok(calls) => Asks {
            reads: args.reads.clone(),
            prompts: args.prompts.clone(),
            calls,
        },
        Err(message) => {
            eprintln!("mcp-harness check: {message}");
            return exit::USAGE;
        }
    };
    let mut answers = ClientAnswers::new();
    if let Some(a) = args.elicit.clone() {
        answers = answers.elicitation(a);
    }
    if let Some(text) = args.sample.clone() {
        answers = answers.sampling_text(text);
    }
    let client = (args.protocol.clone(), answers);
    let report = mcp_harness::run(check(target, credentials, client, (calls, args.timeout)));
    if args.json {
        super::emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&to_json(&report)).expect("JSON values serialize")
        ));
    } else {
        print_table(&report);
    }
    if let Some((_, message)) = &report.error {
        eprintln!("mcp-harness check: {message}");
    }
    report.code
}

fn target(args: &CheckArgs) -> Result<Target, String> {
    match (&args.url, args.command.split_first()) {
        (Some(url), _) => {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "`{url}` is not an http(s) url; to check a command, put it after `--`"
                ));
            }
            match args.transport.unwrap_or(TransportArg::Http) {
                TransportArg::Http => Ok(Target::Http(url.clone())),
                TransportArg::Sse => Ok(Target::Sse(url.clone())),
                TransportArg::Stdio => {
                    Err("--transport stdio needs a command after `--`, not a url".into())
                }
            }
        }
        (None, Some((program, rest))) => {
            if let Some(t) = args.transport
                && t != TransportArg::Stdio
            {
                return Err(
                    "a command is checked over stdio; start an HTTP server yourself and pass its url"
                        .into(),
                );
            }
            let name = std::path::Path::new(program)
                .file_name()
                .map_or_else(|| program.clone(), |n| n.to_string_lossy().into_owned());
            Ok(Target::Stdio(
                ServerSpec::new(name, program)
                    .args(rest)
                    .transport(Transport::Stdio),
            ))
        }
        (None, None) => Err(
            "nothing to check: give a url (http://host:port/mcp) or a command after `--`".into(),
        ),
    }
}

fn parse_alg(s: &str) -> Result<JwtSigningAlg, String> {
    JwtSigningAlg::parse(s).ok_or_else(|| format!("`{s}` is not ES256 or RS256"))
}

/// The environment variable that may hold the client's private key (PEM) instead of a file.
const PRIVATE_KEY_ENV: &str = "MCP_HARNESS_OAUTH_PRIVATE_KEY";

/// The client's private key, from --oauth-private-key-file or the environment.
fn private_key(args: &CheckArgs) -> Result<Option<Secret>, String> {
    if let Some(path) = &args.oauth_private_key_file {
        return std::fs::read_to_string(path)
            .map(|pem| Some(Secret::new(pem)))
            .map_err(|e| {
                format!(
                    "--oauth-private-key-file {}: cannot read it ({e})",
                    path.display()
                )
            });
    }
    if args.oauth_client_secret.is_some() {
        return Ok(None);
    }
    Ok(std::env::var(PRIVATE_KEY_ENV)
        .ok()
        .filter(|pem| !pem.trim().is_empty())
        .map(Secret::new))
}

/// The OAuth settings asked for on the command line, if any.
fn oauth(args: &CheckArgs) -> Result<Option<OAuth>, String> {
    if !(args.oauth
        || args.oauth_client_id.is_some()
        || args.oauth_scope.is_some()
        || args.oauth_client_metadata_url.is_some())
    {
        return Ok(None);
    }
    let mut oauth = OAuth::new()
        .client_name("mcp-harness check")
        .step_timeout(args.timeout);
    if let Some(id) = &args.oauth_client_id {
        let key = private_key(args)?;
        let secret = args.oauth_client_secret.clone().map(Secret::new);
        oauth = match (key, secret) {
            (Some(pem), _) => oauth.client_credentials_jwt(id.clone(), pem, args.oauth_signing_alg),
            (None, Some(secret)) if args.oauth_client_credentials => {
                oauth.client_credentials(id.clone(), secret, TokenEndpointAuth::ClientSecretBasic)
            }
            (None, None) if args.oauth_client_credentials => {
                return Err(format!(
                    "--oauth-client-credentials needs the client's secret \
                     (--oauth-client-secret or MCP_HARNESS_OAUTH_CLIENT_SECRET) or its private \
                     key (--oauth-private-key-file or {PRIVATE_KEY_ENV})"
                ));
            }
            (None, Some(secret)) => oauth.pre_registered(
                id.clone(),
                Some(secret),
                TokenEndpointAuth::ClientSecretBasic,
            ),
            (None, None) => oauth.pre_registered(id.clone(), None, TokenEndpointAuth::None),
        };
    }
    if let Some(url) = &args.oauth_client_metadata_url {
        oauth = oauth.client_metadata_url(url.clone());
    }
    if let Some(scope) = &args.oauth_scope {
        oauth = oauth.scope(scope.clone());
    }
    Ok(Some(oauth))
}

/// What the check authenticates with.
struct Credentials {
    headers: Vec<(String, String)>,
    token: Option<String>,
    oauth: Option<OAuth>,
}

/// What the check asks for after listing, in this order.
struct Asks {
    reads: Vec<String>,
    prompts: Vec<(String, Option<Value>)>,
    calls: Vec<(String, Option<Value>)>,
}

type Calls = (Asks, Duration);

async fn check(
    target: Target,
    credentials: Credentials,
    (protocol, answers): (Option<Protocol>, ClientAnswers),
    (calls, timeout): Calls,
) -> Report {
    let mut report = Report {
        target: match &target {
            Target::Stdio(spec) => spec.command_line(),
            Target::Http(u) | Target::Sse(u) => u.clone(),
            Target::Server(s) => s.url().to_owned(),
            other => other.describe(),
        },
        transport: target.transport().as_str(),
        ..Report::default()
    };
    let mut builder = Session::builder(target)
        .name("mcp-harness-check")
        .connect_attempts(2)
        .backoff(Duration::from_millis(100), Duration::from_millis(500))
        .init_timeout(timeout)
        .request_timeout(timeout)
        .answers(answers);
    if let Some(p) = protocol {
        builder = builder.protocol(p);
    }
    if let Some(t) = credentials.token {
        builder = builder.bearer_token(t);
    }
    if let Some(o) = credentials.oauth {
        builder = builder.oauth(o);
    }
    for (k, v) in credentials.headers {
        builder = builder.header(k, v);
    }
    let started = Instant::now();
    let session = match builder.connect().await {
        Ok(s) => s,
        Err(e) => {
            report.steps.push(Step {
                name: "connect",
                outcome: Outcome::Failed(e.kind().into()),
                took: started.elapsed(),
            });
            fail(&mut report, &e);
            return report;
        }
    };
    report.server = session.server_info().map(|i| (i.name, i.version));
    report.protocol = Some((session.protocol_version(), session.era().to_string()));
    report.steps.push(Step {
        // How the session was opened: the handshake, or the stateless era's discovery.
        name: match session.era() {
            Era::Stateless => "server/discover",
            _ => "initialize",
        },
        outcome: Outcome::Ok(String::new()),
        took: started.elapsed(),
    });
    if let Err(e) = steps(&session, &mut report, calls).await {
        fail(&mut report, &e);
    }
    let _ = session.shutdown().await;
    report
}

fn fail(report: &mut Report, e: &Error) {
    report.code = exit_code_for(e);
    report.error = Some((e.kind().to_owned(), e.to_string()));
}

/// Whether `e` says the server does not implement the method (`-32601`).
fn unsupported(e: &Error) -> bool {
    e.mcp_code() == Some(-32601)
}

async fn steps(session: &Session, report: &mut Report, asks: Asks) -> mcp_harness::Result<()> {
    let caps = session.server_capabilities();

    if session.era() == Era::Handshake {
        let t = Instant::now();
        match session.ping().await {
            Ok(()) => report.steps.push(Step {
                name: "ping",
                outcome: Outcome::Ok(String::new()),
                took: t.elapsed(),
            }),
            Err(e) if unsupported(&e) => report.steps.push(Step {
                name: "ping",
                outcome: Outcome::Unsupported,
                took: t.elapsed(),
            }),
            Err(e) => return Err(step_failed(report, "ping", t, e)),
        }
    } else {
        skip(
            report,
            "ping",
            format!(
                "no ping in {} (the stateless era)",
                session.protocol_version()
            ),
        );
    }

    if caps.tools.is_some() {
        report.tools = list_step(
            report,
            "tools/list",
            "tool(s)",
            session.list_tools(),
            |t| json!({"name": t.name, "description": t.description}),
        )
        .await?;
    } else {
        skip(report, "tools/list", not_advertised("tools"));
    }
    if caps.resources.is_some() {
        let list = session.list_resources();
        report.resources = list_step(
            report,
            "resources/list",
            "resource(s)",
            list,
            |r| json!({"uri": r.uri, "name": r.name, "description": r.description}),
        )
        .await?;
    } else {
        skip(report, "resources/list", not_advertised("resources"));
    }
    if caps.prompts.is_some() {
        let list = session.list_prompts();
        report.prompts = list_step(
            report,
            "prompts/list",
            "prompt(s)",
            list,
            |p| json!({"name": p.name, "description": p.description}),
        )
        .await?;
    } else {
        skip(report, "prompts/list", not_advertised("prompts"));
    }

    // Each read, prompt and call is its own step: a failure is recorded (the first decides the
    // exit code) and the next still runs.
    let mut first_failure: Option<FirstFailure> = None;
    let first = &mut first_failure;
    for uri in asks.reads {
        if caps.resources.is_none() {
            let why = format!("{}; `{uri}` was not read", not_advertised("resources"));
            not_sent(report, first, "resources/read", "not_advertised", why);
            continue;
        }
        let t = Instant::now();
        match session.read_resource(&uri).await {
            Ok(result) => {
                let took = t.elapsed();
                report.steps.push(Step {
                    name: "resources/read",
                    outcome: Outcome::Ok(format!("{uri}: {} content(s)", result.contents.len())),
                    took,
                });
                report.reads.push(json!({
                    "uri": uri,
                    "ms": took.as_secs_f64() * 1000.0,
                    "result": serde_json::to_value(&result).unwrap_or(Value::Null),
                }));
            }
            Err(e) => {
                let entry = json!({ "uri": uri });
                let entry = request_failed(report, first, "resources/read", &uri, t, &e, entry);
                report.reads.push(entry);
            }
        }
    }
    for (name, args) in asks.prompts {
        if caps.prompts.is_none() {
            let why = format!("{}; `{name}` was not asked for", not_advertised("prompts"));
            not_sent(report, first, "prompts/get", "not_advertised", why);
            continue;
        }
        let arguments = args.unwrap_or(Value::Null);
        let t = Instant::now();
        match session.get_prompt(&name, arguments.clone()).await {
            Ok(result) => {
                let took = t.elapsed();
                report.steps.push(Step {
                    name: "prompts/get",
                    outcome: Outcome::Ok(format!("{name}: {} message(s)", result.messages.len())),
                    took,
                });
                report.prompts_got.push(json!({
                    "prompt": name,
                    "arguments": arguments,
                    "ms": took.as_secs_f64() * 1000.0,
                    "result": serde_json::to_value(&result).unwrap_or(Value::Null),
                }));
            }
            Err(e) => {
                let entry = json!({ "prompt": name, "arguments": arguments });
                let entry = request_failed(report, first, "prompts/get", &name, t, &e, entry);
                report.prompts_got.push(entry);
            }
        }
    }
    for (tool, args) in asks.calls {
        if caps.tools.is_none() {
            let why = format!("{}; `{tool}` was not called", not_advertised("tools"));
            not_sent(report, first, "tools/call", "not_advertised", why);
            continue;
        }
        let listed = report.tools.as_ref().map(|tools| {
            tools
                .iter()
                .any(|t| t["name"].as_str() == Some(tool.as_str()))
        });
        if listed == Some(false) {
            // Not in the list: unknown, or dropped by the client because its `x-mcp-header`
            // annotations are invalid (SEP-2243: such a tool must not be called).
            let why = format!(
                "`{tool}` is not in the server's tools/list (a tool with invalid x-mcp-header \
                 annotations is left out of it); it was not called"
            );
            not_sent(report, first, "tools/call", "not_listed", why);
            continue;
        }
        let arguments = args.unwrap_or(Value::Null);
        let t = Instant::now();
        match session.call_tool(&tool, arguments.clone()).await {
            Ok(result) => {
                let took = t.elapsed();
                let is_error = result.is_error == Some(true);
                let text = mcp_harness::tool_text(&result);
                report.steps.push(Step {
                    name: "tools/call",
                    outcome: if is_error {
                        Outcome::Failed(format!("{tool}: isError: {}", one_line(&text, 60)))
                    } else {
                        Outcome::Ok(format!("{tool}: {}", one_line(&text, 60)))
                    },
                    took,
                });
                report.calls.push(json!({
                    "tool": tool,
                    "arguments": arguments,
                    "is_error": is_error,
                    "text": text,
                    "ms": took.as_secs_f64() * 1000.0,
                    "result": serde_json::to_value(&result).unwrap_or(Value::Null),
                }));
                if is_error {
                    first.get_or_insert((
                        exit::TOOL_ERROR,
                        "tool_error".into(),
                        format!("tool `{tool}` returned isError: {}", one_line(&text, 200)),
                    ));
                }
            }
            Err(e) => {
                let entry = json!({ "tool": tool, "arguments": arguments });
                let entry = request_failed(report, first, "tools/call", &tool, t, &e, entry);
                report.calls.push(entry);
            }
        }
    }
    if let Some((code, kind, message)) = first_failure {
        report.code = code;
        report.error = Some((kind, message));
    }
    Ok(())
}

/// The exit code, error kind and message of the first read, prompt or call that failed.
type FirstFailure = (u8, String, String);

/// One `*/list` step: the items as report entries, `None` when the server answered that it
/// does not implement the method, an error (the step recorded as failed) otherwise.
async fn list_step<T>(
    report: &mut Report,
    name: &'static str,
    noun: &str,
    list: impl std::future::Future<Output = mcp_harness::Result<Vec<T>>>,
    entry: impl Fn(&T) -> Value,
) -> mcp_harness::Result<Option<Vec<Value>>> {
    let t = Instant::now();
    match list.await {
        Ok(items) => {
            report.steps.push(Step {
                name,
                outcome: Outcome::Ok(format!("{} {noun}", items.len())),
                took: t.elapsed(),
            });
            Ok(Some(items.iter().map(entry).collect()))
        }
        Err(e) if unsupported(&e) => {
            report.steps.push(Step {
                name,
                outcome: Outcome::Unsupported,
                took: t.elapsed(),
            });
            Ok(None)
        }
        Err(e) => Err(step_failed(report, name, t, e)),
    }
}

/// A read, prompt or call refused before anything was sent (exit 5).
fn not_sent(
    report: &mut Report,
    first: &mut Option<FirstFailure>,
    name: &'static str,
    kind: &str,
    why: String,
) {
    report.steps.push(Step {
        name,
        outcome: Outcome::Failed(why.clone()),
        took: Duration::ZERO,
    });
    first.get_or_insert((exit::PROTOCOL, kind.into(), why));
}

/// A read, prompt or call that failed: its step, and its report `entry` with `ms` and `error`.
fn request_failed(
    report: &mut Report,
    first: &mut Option<FirstFailure>,
    name: &'static str,
    label: &str,
    t: Instant,
    e: &Error,
    mut entry: Value,
) -> Value {
    report.steps.push(Step {
        name,
        outcome: Outcome::Failed(format!("{label}: {}", e.kind())),
        took: t.elapsed(),
    });
    entry["ms"] = json!(t.elapsed().as_secs_f64() * 1000.0);
    entry["error"] = json!({"kind": e.kind(), "message": e.to_string()});
    first.get_or_insert((exit_code_for(e), e.kind().to_owned(), e.to_string()));
    entry
}

fn not_advertised(capability: &str) -> String {
    format!("the server does not advertise {capability}")
}

fn skip(report: &mut Report, name: &'static str, why: String) {
    report.steps.push(Step {
        name,
        outcome: Outcome::Skipped(why),
        took: Duration::ZERO,
    });
}

fn step_failed(report: &mut Report, name: &'static str, t: Instant, e: Error) -> Error {
    report.steps.push(Step {
        name,
        outcome: Outcome::Failed(e.kind().into()),
        took: t.elapsed(),
    });
    e
}

fn one_line(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() > max {
        format!("{}...", flat.chars().take(max).collect::<String>())
    } else {
        flat
    }
}

fn to_json(r: &Report) -> Value {
    let unsupported: Vec<&str> = r
        .steps
        .iter()
        .filter(|s| matches!(s.outcome, Outcome::Unsupported))
        .map(|s| s.name)
        .collect();
    let skipped: Vec<Value> = r
        .steps
        .iter()
        .filter_map(|s| match &s.outcome {
            Outcome::Skipped(why) => Some(json!({"step": s.name, "reason": why})),
            _ => None,
        })
        .collect();
    json!({
        "target": r.target,
        "transport": r.transport,
        "ok": r.code == exit::OK,
        "exit_code": r.code,
        "server": r.server.as_ref().map(|(name, version)| json!({"name": name, "version": version})),
        "protocol_version": r.protocol.as_ref().map(|(version, _)| version),
        "era": r.protocol.as_ref().map(|(_, era)| era),
        "steps": r.steps.iter().map(|s| {
            let (status, detail) = match &s.outcome {
                Outcome::Ok(d) => ("ok", d.clone()),
                Outcome::Unsupported => ("unsupported", String::new()),
                Outcome::Skipped(why) => ("skipped", why.clone()),
                Outcome::Failed(d) => ("failed", d.clone()),
            };
            json!({"step": s.name, "status": status, "detail": detail, "ms": s.took.as_secs_f64() * 1000.0})
        }).collect::<Vec<_>>(),
        "unsupported": unsupported,
        "skipped": skipped,
        "tools": r.tools,
        "resources": r.resources,
        "prompts": r.prompts,
        "reads": r.reads,
        "prompts_got": r.prompts_got,
        "call": r.calls.first(),
        "calls": r.calls,
        "error": r.error.as_ref().map(|(kind, message)| json!({"kind": kind, "message": message})),
    })
}

fn print_table(r: &Report) {
    let mut out = String::new();
    let _ = writeln!(out, "target     {} ({})", r.target, r.transport);
    if let Some((name, version)) = &r.server {
        let _ = writeln!(out, "server     {name} {version}");
    }
    if let Some((version, era)) = &r.protocol {
        let _ = writeln!(out, "protocol   {version} ({era} era)");
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<16} {:<12} {:>10}  detail",
        "step", "status", "time"
    );
    for s in &r.steps {
        let (status, detail) = match &s.outcome {
            Outcome::Ok(d) => ("ok", d.as_str()),
            Outcome::Unsupported => ("unsupported", "method not found (-32601)"),
            Outcome::Skipped(why) => ("skipped", why.as_str()),
            Outcome::Failed(d) => ("FAILED", d.as_str()),
        };
        let took = match s.outcome {
            Outcome::Skipped(_) => "-".to_owned(),
            _ => ms(s.took),
        };
        let _ = writeln!(out, "{:<16} {:<12} {:>10}  {detail}", s.name, status, took);
    }
    let mut list = |title: &str, items: &Option<Vec<Value>>, key: &str| {
        if let Some(items) = items
            && !items.is_empty()
        {
            let _ = writeln!(out);
            let _ = writeln!(out, "{title} ({})", items.len());
            for item in items {
                let name = item[key].as_str().unwrap_or("?");
                let desc = item["description"].as_str().unwrap_or("");
                let _ = writeln!(out, "  {:<28} {}", name, one_line(desc, 70));
            }
        }
    };
    list("tools", &r.tools, "name");
    list("resources", &r.resources, "uri");
    list("prompts", &r.prompts, "name");
    let _ = writeln!(out);
    match &r.error {
        None => {
            let _ = writeln!(out, "result     ok");
        }
        Some((kind, _)) => {
            let _ = writeln!(out, "result     FAILED: {kind} (exit code {})", r.code);
        }
    }
    super::emit(&out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_parse_with_and_without_inline_arguments() {
        assert_eq!(parse_call("echo"), Ok(("echo".into(), None)));
        assert_eq!(
            parse_call(r#"add:{"a":1}"#),
            Ok(("add".into(), Some(json!({"a": 1}))))
        );
        assert_eq!(
            parse_call(r#"add: {"a":1}"#),
            Ok(("add".into(), Some(json!({"a": 1}))))
        );
        // A colon that no JSON object follows belongs to the tool's name.
        assert_eq!(
            parse_call(r#"github:search:{"q":"x"}"#),
            Ok(("github:search".into(), Some(json!({"q": "x"}))))
        );
        assert_eq!(
            parse_call("github:search"),
            Ok(("github:search".into(), None))
        );
        assert!(parse_call(":{}").is_err());
        assert!(parse_call("add:{oops").is_err());
        assert!(parse_call("add:[1]").is_ok_and(|(t, a)| t == "add:[1]" && a.is_none()));
    }
}
