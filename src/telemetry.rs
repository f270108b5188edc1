//! Logging: JSON lines on stderr (the Lambda runtime ships both streams to CloudWatch; stdout is
//! kept for the `invoke` command's response and, under Lambda, the metrics line).
//!
//! Every line lists the spans it was written in, outermost first, with their fields: the
//! `invocation` span (request id, sync id) and, inside a sync, the `cycle` span. A line from the
//! middle of a cycle can therefore be traced back to its invocation without joining on time.
//!
//! Level from `AWS_LAMBDA_LOG_LEVEL` (set by the function's `LoggingConfig`), then `RUST_LOG`,
//! else `info`.

use tracing_subscriber::EnvFilter;

pub fn init() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_span_list(true)
        .with_env_filter(filter(&level))
        .with_writer(std::io::stderr)
        .try_init();
}

/// The filter for a level setting: a Lambda level name (`TRACE` … `FATAL`) or any `RUST_LOG`
/// directive; anything unreadable falls back to `info` rather than silencing the logs.
fn filter(level: &str) -> EnvFilter {
    let level = level.trim().to_lowercase();
    // Lambda's scale ends at FATAL, which tracing does not have; its closest level is error.
    let level = if level == "fatal" {
        "error".to_owned()
    } else {
        level
    };
    EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("info"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::level_filters::LevelFilter;

    #[test]
    fn lambda_level_names_become_filters() {
        assert_eq!(filter("FATAL").max_level_hint(), Some(LevelFilter::ERROR));
        assert_eq!(filter("WARN").max_level_hint(), Some(LevelFilter::WARN));
        assert_eq!(filter("TRACE").max_level_hint(), Some(LevelFilter::TRACE));
        assert_eq!(
            filter("disposition_sync=debug").max_level_hint(),
            Some(LevelFilter::DEBUG)
        );
        assert_eq!(
            filter("disposition_sync=loud").max_level_hint(),
            Some(LevelFilter::INFO)
        );
    }
}
