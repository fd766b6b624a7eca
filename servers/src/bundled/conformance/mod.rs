//! The `conformance` server: the tools, resources, prompts and completions that the
//! official MCP conformance suite (`@modelcontextprotocol/conformance`) calls in its
//! server scenarios of both protocol eras, with the contents and behaviour those
//! scenarios check.
//!
//! * `tools`: the suite's tools of the handshake-era scenarios (content types, logging,
//!   progress, sampling, elicitation, JSON Schema 2020-12, SSE polling).
//! * `stateless`: the tools and the prompt of the 2026-07-28 scenarios (SEP-2322
//!   `input_required` rounds, SEP-2575 diagnostics, SEP-2243 `x-mcp-header`).
//! * `tasks`: the fixtures of the tasks-extension scenarios (SEP-2663: `greet`,
//!   `slow_compute`, `failing_job`, `protocol_error_job`, `confirm_delete`, `multi_input`,
//!   `test_tool_with_task`), run as tasks of rmcp's task manager.
//! * `catalog`: resources, prompts and completions.
//!
//! Tools that need the client (sampling, elicitation, roots) ask it through a
//! [`Conversation`](crate::handler::ask::Conversation): a server-to-client request during
//! the call in the handshake era, an `input_required` result in the stateless era. In the
//! handshake era a tool whose capability the client did not declare answers with
//! `isError: true`; in the stateless era with `-32021` (missing required client
//! capability).

// Logging is deprecated by SEP-2577 but part of the versions the suite tests.
#![allow(deprecated)]

mod catalog;
mod stateless;
mod tasks;
mod tools;

use base64::{Engine as _, prelude::BASE64_STANDARD};
use futures::future::BoxFuture;
use rmcp::{
    ErrorData, RoleServer,
    handler::server::router::tool::ToolRouter,
    model::{
        CallToolResult, CompleteRequestParams, CompleteResult, ContentBlock,
        GetPromptRequestParams, GetPromptResponse, GetPromptResult, ListResourceTemplatesResult,
        Prompt, ReadResourceResult, Resource, ServerCapabilities,
    },
    service::RequestContext,
};

use crate::{
    handler::{BundledServer, Handler},
    options::Bundled,
};

/// The server's `instructions`.
pub(crate) const INSTRUCTIONS: &str = "A spec-complete MCP server for testing clients and \
     gateways: the tools, resources, prompts and completions of the official MCP conformance \
     suite's server scenarios (test_simple_text, test_sampling, test_elicitation, \
     test://static-text, test_simple_prompt, ...) and of its 2026-07-28 scenarios \
     (test_input_required_result_*, test_missing_capability, subscriptions/listen, ...) and \
     of its tasks-extension scenarios (slow_compute, confirm_delete, ... as SEP-2663 tasks).";

/// What the server declares: everything the suite's server scenarios use, the tasks
/// extension (`io.modelcontextprotocol/tasks`) included.
pub(crate) fn capabilities() -> ServerCapabilities {
    ServerCapabilities::builder()
        .enable_tools()
        .enable_tool_list_changed()
        .enable_resources()
        .enable_resources_subscribe()
        .enable_resources_list_changed()
        .enable_prompts()
        .enable_prompts_list_changed()
        .enable_logging()
        .enable_completions()
        .enable_tasks()
        .build()
}

/// The conformance server: everything below, plugged into the handler.
pub(crate) struct Conformance;

impl BundledServer for Conformance {
    fn kind(&self) -> Bundled {
        Bundled::Conformance
    }

    fn tools(&self) -> ToolRouter<Handler> {
        Handler::conformance_tools()
            + Handler::conformance_stateless_tools()
            + Handler::conformance_task_tools()
            + Handler::diagnostic_tools()
    }

    fn capabilities(&self) -> ServerCapabilities {
        capabilities()
    }

    fn instructions(&self) -> &'static str {
        INSTRUCTIONS
    }

    fn list_resources(&self) -> Result<Vec<Resource>, ErrorData> {
        Ok(catalog::resources())
    }

    fn read_resource(&self, uri: &str) -> Result<ReadResourceResult, ErrorData> {
        catalog::read_resource(uri)
    }

    fn list_resource_templates(&self) -> ListResourceTemplatesResult {
        ListResourceTemplatesResult::with_all_items(catalog::resource_templates())
    }

    fn resource_subscriptions(&self) -> bool {
        true
    }

    fn list_prompts(&self) -> Result<Vec<Prompt>, ErrorData> {
        Ok(catalog::prompts())
    }

    fn get_prompt(&self, request: &GetPromptRequestParams) -> Result<GetPromptResult, ErrorData> {
        catalog::get_prompt(request)
    }

    fn get_prompt_asking<'a>(
        &'a self,
        request: GetPromptRequestParams,
        ctx: RequestContext<RoleServer>,
    ) -> BoxFuture<'a, Result<GetPromptResponse, ErrorData>> {
        if request.name == stateless::INPUT_REQUIRED_PROMPT {
            return Box::pin(stateless::input_required_prompt(request, ctx));
        }
        Box::pin(std::future::ready(
            self.get_prompt(&request).map(Into::into),
        ))
    }

    fn complete(&self, request: &CompleteRequestParams) -> Result<CompleteResult, ErrorData> {
        catalog::complete(request)
    }
}

/// A 1x1 red PNG.
pub(super) const RED_PIXEL_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";

/// A short silent WAV (8 kHz, mono, 8-bit PCM, 10 ms), base64-encoded.
pub(super) fn silent_wav() -> String {
    const RATE: u32 = 8000;
    const SAMPLES: u32 = RATE / 100;
    let mut wav = Vec::with_capacity(44 + SAMPLES as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + SAMPLES).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes()); // fmt chunk size
    wav.extend_from_slice(&1u16.to_le_bytes()); // PCM
    wav.extend_from_slice(&1u16.to_le_bytes()); // mono
    wav.extend_from_slice(&RATE.to_le_bytes());
    wav.extend_from_slice(&RATE.to_le_bytes()); // bytes per second
    wav.extend_from_slice(&1u16.to_le_bytes()); // block align
    wav.extend_from_slice(&8u16.to_le_bytes()); // bits per sample
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&SAMPLES.to_le_bytes());
    wav.resize(44 + SAMPLES as usize, 0x80); // 8-bit PCM silence
    BASE64_STANDARD.encode(wav)
}

pub(super) fn text(s: impl Into<String>) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(s)])
}

pub(super) fn tool_error(s: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(s)])
}
