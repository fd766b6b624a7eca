//! fast-time: the same answers, in the same JSON shape, as the reference Python
//! `mcp-server-time` (`get_current_time` / `convert_time`).
//!
//! Its tools are `get_system_time` and `convert_time` (plus the shared `whoami` and
//! `stats`); it has no resources or prompts.

use chrono::{DateTime, NaiveTime, SecondsFormat, TimeZone, Utc};
use chrono_tz::{OffsetComponents, Tz};
use rmcp::{
    ErrorData,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, Prompt, Resource, ServerCapabilities},
    schemars, tool, tool_router,
};
use serde::{Deserialize, Serialize};

use crate::{
    handler::{BundledServer, Handler, text},
    options::Bundled,
};

#[derive(Serialize)]
struct TimeResult {
    timezone: String,
    datetime: String,
    day_of_week: String,
    is_dst: bool,
}

#[derive(Serialize)]
struct Conversion {
    source: TimeResult,
    target: TimeResult,
    time_difference: String,
}

fn zone(name: &str) -> Result<Tz, ErrorData> {
    name.parse::<Tz>().map_err(|_| {
        ErrorData::invalid_params(
            format!(
                "Invalid timezone: {name:?} is not an IANA time zone name \
                 (e.g. \"Europe/Paris\", \"America/New_York\", \"UTC\")"
            ),
            None,
        )
    })
}

fn describe(timezone: &str, at: &DateTime<Tz>) -> TimeResult {
    TimeResult {
        timezone: timezone.to_owned(),
        datetime: at.to_rfc3339_opts(SecondsFormat::Secs, false),
        day_of_week: at.format("%A").to_string(),
        is_dst: !at.offset().dst_offset().is_zero(),
    }
}

fn to_json(value: &impl Serialize) -> Result<String, ErrorData> {
    serde_json::to_string_pretty(value)
        .map_err(|e| ErrorData::internal_error(format!("serializing the result: {e}"), None))
}

/// `get_system_time(timezone)`.
pub(crate) fn system_time(timezone: &str) -> Result<String, ErrorData> {
    let tz = zone(timezone)?;
    let now = Utc::now().with_timezone(&tz);
    to_json(&describe(timezone, &now))
}

/// `convert_time(source_timezone, "HH:MM", target_timezone)`: that time today in the
/// source zone, and the same instant in the target zone.
pub(crate) fn convert_time(source: &str, time: &str, target: &str) -> Result<String, ErrorData> {
    let source_tz = zone(source)?;
    let target_tz = zone(target)?;
    let parsed = NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| {
        ErrorData::invalid_params(
            format!("Invalid time format {time:?}. Expected HH:MM [24-hour format]"),
            None,
        )
    })?;
    let today = Utc::now().with_timezone(&source_tz).date_naive();
    let local = today.and_time(parsed);
    let source_time = match source_tz.from_local_datetime(&local) {
        chrono::LocalResult::Single(t) => t,
        // Like Python's fold=0: the earlier of the two instants.
        chrono::LocalResult::Ambiguous(earliest, _) => earliest,
        // In a gap (clocks jump forward): use the offset in force before the jump.
        chrono::LocalResult::None => {
            let before = local - chrono::Duration::hours(3);
            let offset = source_tz
                .from_local_datetime(&before)
                .earliest()
                .map(|t| t.offset().fix())
                .unwrap_or_else(|| chrono::FixedOffset::east_opt(0).expect("zero offset"));
            let utc = local - offset;
            Utc.from_utc_datetime(&utc).with_timezone(&source_tz)
        }
    };
    let target_time = source_time.with_timezone(&target_tz);
    use chrono::Offset;
    let diff_seconds =
        target_time.offset().fix().local_minus_utc() - source_time.offset().fix().local_minus_utc();
    let hours = f64::from(diff_seconds) / 3600.0;
    let time_difference = if hours.fract() == 0.0 {
        format!("{hours:+.1}h")
    } else {
        let s = format!("{hours:+.2}");
        format!("{}h", s.trim_end_matches('0').trim_end_matches('.'))
    };
    to_json(&Conversion {
        source: describe(source, &source_time),
        target: describe(target, &target_time),
        time_difference,
    })
}

#[derive(Deserialize, schemars::JsonSchema)]
struct TimeArgs {
    /// IANA time zone name, e.g. "Europe/Paris" or "UTC".
    timezone: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
struct ConvertArgs {
    /// IANA time zone of the given time.
    source_timezone: String,
    /// Time of day to convert, 24-hour "HH:MM".
    time: String,
    /// IANA time zone to convert to.
    target_timezone: String,
}

// ---------------------------------------------------------------------------------------
// Tools

#[tool_router(router = time_tools, vis = "pub(crate)")]
impl Handler {
    /// Get the current time in a specific time zone.
    #[tool]
    fn get_system_time(
        &self,
        Parameters(TimeArgs { timezone }): Parameters<TimeArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(system_time(&timezone)?))
    }

    /// Convert a time ("HH:MM", today) between time zones.
    #[tool]
    fn convert_time(
        &self,
        Parameters(ConvertArgs {
            source_timezone,
            time: at,
            target_timezone,
        }): Parameters<ConvertArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        Ok(text(convert_time(&source_timezone, &at, &target_timezone)?))
    }
}

// ---------------------------------------------------------------------------------------
// The server

fn method_not_found(method: &str) -> ErrorData {
    ErrorData::new(
        rmcp::model::ErrorCode::METHOD_NOT_FOUND,
        format!("fast-time has no {method}: it is a tools-only server"),
        None,
    )
}

/// fast-time: `get_system_time`, `convert_time`, `whoami` and `stats`; tools only.
pub(crate) struct FastTime;

impl BundledServer for FastTime {
    fn kind(&self) -> Bundled {
        Bundled::FastTime
    }

    fn tools(&self) -> ToolRouter<Handler> {
        Handler::time_tools() + Handler::common_tools()
    }

    fn capabilities(&self) -> ServerCapabilities {
        ServerCapabilities::builder()
            .enable_tools()
            .enable_tool_list_changed()
            .build()
    }

    fn instructions(&self) -> &'static str {
        "Time and time-zone conversion (IANA names): get_system_time, convert_time; \
                 plus whoami and stats."
    }

    fn list_resources(&self) -> Result<Vec<Resource>, ErrorData> {
        // Like the reference mcp-server-time: a tools-only server answers -32601 here.
        Err(method_not_found("resources/list"))
    }

    fn list_prompts(&self) -> Result<Vec<Prompt>, ErrorData> {
        Err(method_not_found("prompts/list"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_shape_and_difference() {
        let out: serde_json::Value =
            serde_json::from_str(&convert_time("UTC", "12:00", "Asia/Kathmandu").unwrap()).unwrap();
        assert_eq!(out["time_difference"], "+5.75h");
        assert!(
            out["source"]["datetime"]
                .as_str()
                .unwrap()
                .ends_with("T12:00:00+00:00")
        );
        assert!(
            out["target"]["datetime"]
                .as_str()
                .unwrap()
                .ends_with("T17:45:00+05:45")
        );
        let out: serde_json::Value =
            serde_json::from_str(&convert_time("Asia/Tokyo", "09:30", "UTC").unwrap()).unwrap();
        assert_eq!(out["time_difference"], "-9.0h");
        assert_eq!(out["target"]["is_dst"], false);
        let err = convert_time("Mars/Olympus", "09:30", "UTC").unwrap_err();
        assert!(err.message.contains("Mars/Olympus"));
        assert!(convert_time("UTC", "25:00", "UTC").is_err());
    }
}
