//! The [`ServerHandler`] of [`Handler`]: the MCP requests, answered from the session's
//! state and the bundled server's [`BundledServer`] answers.

// Logging is deprecated by SEP-2577 but still part of the protocol versions we serve.
#![allow(deprecated)]

use std::sync::atomic::Ordering;

use rmcp::{
    ErrorData, RoleServer, ServerHandler,
    handler::server::tool::ToolCallContext,
    model::{
        CallToolRequestParams, CallToolResponse, CancelTaskParams, CompleteRequestParams,
        CompleteResult, DiscoverResult, ErrorCode, GetPromptRequestParams, GetPromptResponse,
        GetTaskParams, GetTaskResult, InitializeRequestParams, InitializeResult, ListPromptsResult,
        ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
        ReadResourceRequestParams, ReadResourceResponse, ServerConfig, SetLevelRequestParams,
        SubscribeRequestParams, SubscriptionFilter, Tool, UnsubscribeRequestParams,
        UpdateTaskParams,
    },
    service::{RequestContext, SubscriptionContext},
};

use super::{Handler, InitSessionId, era::Era, level_index};

/// Sets `ttl_ms` and `cache_scope` of a list result to the server's cache hints in the
/// stateless era (the handshake era's results have no such fields).
macro_rules! with_cache_hints {
    ($handler:expr, $ctx:expr, $result:expr) => {{
        let mut result = $result;
        if Era::of($ctx) == Era::Stateless
            && let Some((ttl_ms, scope)) = $handler.shared().server.cache_hints()
        {
            result.ttl_ms = Some(ttl_ms);
            result.cache_scope = Some(scope);
        }
        result
    }};
}

// ---------------------------------------------------------------------------------------
// The ServerHandler

impl ServerHandler for Handler {
    fn get_info(&self) -> ServerConfig {
        self.shared().config.clone()
    }

    async fn initialize(
        &self,
        request: InitializeRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<InitializeResult, ErrorData> {
        let result = self.negotiate_initialize(&request)?;
        let session_id = context
            .extensions
            .get::<InitSessionId>()
            .map(|s| s.0.clone());
        self.record_initialize(&request.client_info.name, session_id);
        context.peer.set_peer_info(request);
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tcc = ToolCallContext::new(self, request, context);
        self.shared().tools.call(tcc).await
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(with_cache_hints!(
            self,
            &context,
            ListToolsResult::with_all_items(self.shared().tools.list_all())
        ))
    }

    async fn discover(
        &self,
        context: RequestContext<RoleServer>,
    ) -> Result<DiscoverResult, ErrorData> {
        self.shared()
            .stats
            .discovers
            .fetch_add(1, Ordering::Relaxed);
        if let Some(client) = context.meta.client_info() {
            self.discovered_by(&client.name);
        }
        Ok(DiscoverResult::from_server_info(
            self.supported_protocol_versions().into_owned(),
            self.get_info(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.shared().tools.get(name).cloned()
    }

    async fn set_level(
        &self,
        request: SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.session
            .min_level
            .store(level_index(request.level), Ordering::Relaxed);
        Ok(())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = self.shared().server.list_resources()?;
        Ok(with_cache_hints!(
            self,
            &context,
            ListResourcesResult::with_all_items(resources)
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        self.shared()
            .server
            .read_resource(&request.uri)
            .map(Into::into)
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListPromptsResult, ErrorData> {
        let prompts = self.shared().server.list_prompts()?;
        Ok(with_cache_hints!(
            self,
            &context,
            ListPromptsResult::with_all_items(prompts)
        ))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetPromptResponse, ErrorData> {
        self.shared()
            .server
            .get_prompt_asking(request, context)
            .await
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(with_cache_hints!(
            self,
            &context,
            self.shared().server.list_resource_templates()
        ))
    }

    fn accepted_subscription_filter(
        &self,
        requested: &SubscriptionFilter,
    ) -> Option<SubscriptionFilter> {
        // rmcp narrows this to what get_info advertises (list_changed flags, subscribe).
        let server = self.shared().server;
        let uris = requested.resource_subscriptions.as_ref().map(|uris| {
            uris.iter()
                .filter(|uri| server.resource_subscriptions() && server.read_resource(uri).is_ok())
                .cloned()
                .collect::<Vec<_>>()
        });
        let mut accepted = requested.clone();
        accepted.resource_subscriptions = uris;
        Some(accepted)
    }

    async fn listen(&self, context: SubscriptionContext) -> Result<(), ErrorData> {
        let _registered = self.shared().listeners.register(context.sink().clone());
        context.cancelled().await;
        Ok(())
    }

    async fn subscribe(
        &self,
        request: SubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !self.shared().server.resource_subscriptions() {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("{} has no resources/subscribe", self.shared().kind),
                None,
            ));
        }
        self.subscriptions().insert(request.uri);
        Ok(())
    }

    async fn unsubscribe(
        &self,
        request: UnsubscribeRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        if !self.shared().server.resource_subscriptions() {
            return Err(ErrorData::new(
                ErrorCode::METHOD_NOT_FOUND,
                format!("{} has no resources/unsubscribe", self.shared().kind),
                None,
            ));
        }
        self.subscriptions().remove(&request.uri);
        Ok(())
    }

    async fn complete(
        &self,
        request: CompleteRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<CompleteResult, ErrorData> {
        self.shared().server.complete(&request)
    }

    // SEP-2663 tasks: rmcp answers -32601 unless the server advertises the extension, and
    // -32021 unless the request declared it, before these run.

    async fn get_task(
        &self,
        request: GetTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        Ok(GetTaskResult::new(self.tasks().get_task(&request.task_id)?))
    }

    async fn update_task(
        &self,
        request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks()
            .update_task(&request.task_id, request.input_responses)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.tasks().cancel_task(&request.task_id)
    }
}
