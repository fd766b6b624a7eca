//! The `#[mcp_harness::test]` attribute. Use it through `mcp_harness::test`, not from this
//! crate directly: the expansion names `::mcp_harness`.

use proc_macro::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{ItemFn, parse_macro_input};

/// Runs an `async fn` test on mcp-harness's shared runtime.
///
/// ```ignore
/// #[mcp_harness::test]
/// async fn echo_round_trip() {
///     // sessions, servers and pools opened here outlive this test's body
/// }
/// ```
///
/// expands to a plain `#[test] fn` whose body is `mcp_harness::run(async move { ... })`, so a
/// session opened by one test can be used by the next one in the same process. The function
/// may return a `Result`. With rstest, put `#[rstest]` first: it resolves the fixtures and
/// leaves an argument-free `async fn` to this attribute.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let args = proc_macro2::TokenStream::from(args);
    if !args.is_empty() {
        return syn::Error::new(
            args.span(),
            "#[mcp_harness::test] takes no arguments (a time limit belongs to the calls: \
             SessionBuilder::request_timeout, or the ci profile's slow-timeout under nextest)",
        )
        .to_compile_error()
        .into();
    }
    let ItemFn {
        attrs,
        vis,
        sig,
        block,
    } = parse_macro_input!(item as ItemFn);
    if sig.asyncness.is_none() {
        return syn::Error::new(
            sig.fn_token.span(),
            "#[mcp_harness::test] goes on an `async fn`; a plain `fn` wants #[test]",
        )
        .to_compile_error()
        .into();
    }
    if let Some(arg) = sig.inputs.first() {
        return syn::Error::new(
            arg.span(),
            "#[mcp_harness::test] functions take no arguments; to inject fixtures, put \
             #[rstest] above #[mcp_harness::test]",
        )
        .to_compile_error()
        .into();
    }
    if !sig.generics.params.is_empty() {
        return syn::Error::new(
            sig.generics.span(),
            "#[mcp_harness::test] functions cannot be generic",
        )
        .to_compile_error()
        .into();
    }
    let name = &sig.ident;
    let output = &sig.output;
    // The body becomes an inner `async fn` with the declared return type, so that `?` and
    // `Ok(())` infer as they do in the test as written.
    let body = quote_spanned! {block.span()=>
        async fn __mcp_harness_test_body() #output #block
        #[allow(clippy::let_unit_value)]
        let __mcp_harness_out = ::mcp_harness::run(__mcp_harness_test_body());
        {
            // An `Err` keeps the run's server logs (a panic is seen by the panic hook).
            #[allow(unused_imports)]
            use ::mcp_harness::__private::{NoteOther as _, NoteResult as _};
            (&::mcp_harness::__private::Outcome(&__mcp_harness_out)).note();
        }
        __mcp_harness_out
    };
    quote! {
        #[::core::prelude::v1::test]
        #(#attrs)*
        #vis fn #name() #output {
            #body
        }
    }
    .into()
}
