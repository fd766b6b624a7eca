//! The lifecycle event log ([`EVENT_LOG_ENV`](crate::EVENT_LOG_ENV)).
//!
//! One JSON object per line, appended with `O_APPEND` and a single `write(2)` per
//! line, so several server processes can share one file without interleaving.

use std::{
    fs::File,
    io::Write,
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value};

use crate::env::EVENT_LOG_ENV;

static LOG: OnceLock<Option<File>> = OnceLock::new();

fn log_file() -> Option<&'static File> {
    LOG.get_or_init(|| {
        let path = std::env::var_os(EVENT_LOG_ENV)?;
        if path.is_empty() {
            return None;
        }
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => Some(file),
            Err(error) => {
                tracing::warn!(
                    path = %std::path::Path::new(&path).display(),
                    %error,
                    "cannot open the event log named by {}; events are not recorded",
                    EVENT_LOG_ENV
                );
                None
            }
        }
    })
    .as_ref()
}

/// Opens the event log now (if configured) so the first event costs no `open(2)`.
pub(crate) fn init() {
    let _ = log_file();
}

/// Microseconds since the UNIX epoch.
pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Appends `{"event": name, ...fields, "pid": .., "t_us": ..}` as one line.
pub(crate) fn record(name: &str, fields: impl FnOnce(&mut Map<String, Value>)) {
    let Some(mut file) = log_file() else {
        return;
    };
    let mut object = Map::new();
    object.insert("event".to_owned(), Value::from(name));
    fields(&mut object);
    object.insert("pid".to_owned(), Value::from(std::process::id()));
    object.insert("t_us".to_owned(), Value::from(now_us()));
    let Ok(mut line) = serde_json::to_vec(&object) else {
        return;
    };
    line.push(b'\n');
    // With O_APPEND a regular-file write of a short line is done in one call; keep
    // going on a partial write rather than losing the rest.
    if let Err(error) = file.write_all(&line) {
        tracing::warn!(%error, event = name, "cannot append to the event log");
    }
}
