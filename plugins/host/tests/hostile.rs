//! Hostile plugins: every misbehaviour ends in a clear error naming plugin and node, and the
//! host keeps serving other calls afterwards.

mod common;

use std::sync::Arc;

use omnigen_plugins::{
    CallControl, CancelFlag, LoadedPlugin, PixelFormat, PixelImage, PluginValue, RunError,
    RunFailure,
};
use serde_json::Map;

fn hostile() -> &'static LoadedPlugin {
    static P: std::sync::OnceLock<LoadedPlugin> = std::sync::OnceLock::new();
    P.get_or_init(|| common::load("hostile", "omnigen_plugin_hostile"))
}

fn probe() -> &'static LoadedPlugin {
    static P: std::sync::OnceLock<LoadedPlugin> = std::sync::OnceLock::new();
    P.get_or_init(|| common::load("probe", "omnigen_plugin_probe"))
}

fn run_hostile(node: &str) -> RunError {
    let err = hostile()
        .run(node, vec![], &Map::new(), &CallControl::default())
        .expect_err("hostile node must fail");
    assert_eq!(err.plugin, "hostile");
    assert_eq!(err.node, node);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("plugin `hostile` node `{node}`: ")),
        "{text}"
    );
    // After every failure a healthy plugin still runs, on the same engine and pool.
    assert_healthy();
    err
}

fn assert_healthy() {
    let image = PixelImage {
        width: 2,
        height: 1,
        format: PixelFormat::Rgba8,
        data: vec![1, 2, 3, 4, 5, 6, 7, 8],
    };
    let out = probe()
        .run(
            "identity",
            vec![("image".into(), PluginValue::Image(image.clone()))],
            &Map::new(),
            &CallControl::default(),
        )
        .expect("the probe plugin still runs");
    assert_eq!(
        out.values,
        vec![("image".to_string(), PluginValue::Image(image))]
    );
}

#[test]
fn infinite_loop_times_out() {
    let err = run_hostile("spin");
    assert_eq!(err.failure, RunFailure::Timeout(hostile().limits().timeout));
    assert!(err.to_string().contains("timed out after 500 ms"), "{err}");
}

#[test]
fn unbounded_allocation_hits_the_memory_limit() {
    let err = run_hostile("hog");
    assert_eq!(err.failure, RunFailure::OutOfMemory(64 << 20));
    assert!(
        err.to_string().contains("ran out of memory (limit 64 MiB)"),
        "{err}"
    );
}

#[test]
fn deep_recursion_overflows_the_stack() {
    assert_eq!(run_hostile("recurse").failure, RunFailure::StackOverflow);
}

#[test]
fn panic_is_a_crash_with_the_panic_message() {
    let err = run_hostile("panic");
    assert!(matches!(err.failure, RunFailure::Crashed(_)), "{err:?}");
    assert!(
        err.to_string()
            .contains("deliberate panic in a hostile plugin"),
        "{err}"
    );
}

#[test]
fn unreachable_is_a_crash() {
    let err = run_hostile("trap");
    match &err.failure {
        RunFailure::Crashed(m) => assert!(m.contains("unreachable"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn malformed_and_oversized_outputs_are_rejected() {
    let cases = [
        (
            "bad_size",
            "output `image` is 1024x1024 with 4 channel(s), so it needs 4194304 bytes, but has 10",
        ),
        ("overflow_dims", "pixels, more than the limit"),
        ("wrong_type", "output `image` should be image, got text"),
        ("missing_output", "output `image` is missing"),
        ("extra_output", "output `surprise` is not declared"),
        ("duplicate_output", "output `image` returned twice"),
    ];
    for (node, expected) in cases {
        let err = run_hostile(node);
        assert!(
            matches!(err.failure, RunFailure::InvalidOutput(_)),
            "{node}: {err:?}"
        );
        assert!(err.to_string().contains(expected), "{node}: {err}");
    }
}

#[test]
fn allocating_a_huge_output_fails_inside_the_plugin() {
    // 400 MB of pixels cannot even be built under the 64 MiB budget.
    assert_eq!(
        run_hostile("oversized").failure,
        RunFailure::OutOfMemory(64 << 20)
    );
}

#[test]
fn wasi_filesystem_network_environment_and_clock_are_not_available() {
    for (node, interface) in [
        ("read_file", "wasi:filesystem/"),
        ("connect", "wasi:sockets/"),
        ("read_env", "wasi:cli/environment"),
        ("read_clock", "wasi:clocks/"),
    ] {
        let err = run_hostile(node);
        match &err.failure {
            RunFailure::Forbidden(import) => {
                assert!(import.starts_with(interface), "{node}: {import}")
            }
            other => panic!("{node}: expected a sandbox violation, got {other:?}"),
        }
        assert!(
            err.to_string()
                .contains("which the sandbox does not provide"),
            "{err}"
        );
    }
}

#[test]
fn log_spam_is_stopped_and_bounded() {
    let err = run_hostile("log_spam");
    assert_eq!(
        err.failure,
        RunFailure::LogFlood(hostile().limits().log_flood_calls)
    );
    assert!(err.log_tail.len() <= 5);
    for line in &err.log_tail {
        assert!(line.len() <= hostile().limits().max_log_message_bytes + '…'.len_utf8());
    }
}

#[test]
fn polite_failures_are_reported_as_such() {
    let err = run_hostile("fails");
    assert_eq!(
        err.failure,
        RunFailure::Reported("this node always fails politely".into())
    );
}

#[test]
fn cancellation_stops_cooperative_and_uncooperative_nodes() {
    // Cooperative: the progress callback says stop, the node returns `cancelled`.
    let control = CallControl {
        progress: Some(Arc::new(|_| false)),
        cancel: CancelFlag::new(),
    };
    let err = hostile()
        .run("wait_for_cancel", vec![], &Map::new(), &control)
        .unwrap_err();
    assert_eq!(err.failure, RunFailure::Cancelled);

    // Uncooperative: an infinite loop is interrupted at the next epoch tick.
    let cancel = CancelFlag::new();
    cancel.cancel();
    let control = CallControl {
        progress: None,
        cancel,
    };
    let err = hostile()
        .run("spin", vec![], &Map::new(), &control)
        .unwrap_err();
    assert_eq!(err.failure, RunFailure::Cancelled);
    assert_healthy();
}

#[test]
fn many_failures_do_not_leak_pool_slots() {
    // More failing calls than the pool has slots: each store must give its slot back.
    for _ in 0..3 * common::test_config().max_concurrent_calls {
        let err = hostile()
            .run("trap", vec![], &Map::new(), &CallControl::default())
            .unwrap_err();
        assert!(matches!(err.failure, RunFailure::Crashed(_)));
    }
    assert_healthy();
}

#[test]
fn a_call_never_sees_the_memory_of_an_earlier_call() {
    // Each call scribbles over 4 MiB of freshly grown memory; the pool keeps those pages resident for the
    // next instance and must hand them back zeroed.
    for call in 0..4 {
        let out = probe()
            .run(
                "leftovers",
                vec![],
                &serde_json::from_value(serde_json::json!({"pages": 64})).expect("params"),
                &CallControl::default(),
            )
            .expect("leftovers runs");
        assert_eq!(
            out.values,
            vec![("nonzero".to_string(), PluginValue::Integer(0))],
            "call {call} found bytes written by an earlier call"
        );
    }
}

/// Asserts that `text` is safe to print: no control character but the newlines of a backtrace.
fn assert_printable(text: &str) {
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "control characters reached the message: {text:?}"
    );
}

#[test]
fn huge_log_lines_are_kept_as_small_copies_within_a_byte_budget() {
    let limits = hostile().limits().clone();
    let out = hostile()
        .run("log_huge", vec![], &Map::new(), &CallControl::default())
        .expect("log_huge returns normally");
    let kept: usize = out.log.iter().map(|l| l.message.len()).sum();
    assert!(!out.log.is_empty());
    assert!(
        kept <= limits.max_log_bytes + '…'.len_utf8(),
        "{kept} bytes kept"
    );
    assert_eq!(out.log.len() as u64 + out.dropped_logs, 40);
    for line in &out.log {
        assert!(line.message.len() <= limits.max_log_message_bytes + '…'.len_utf8());
        // A right-sized copy, not the plugin's 8 MiB buffer cut short.
        assert!(
            line.message.capacity() <= limits.max_log_message_bytes + 8,
            "a kept line holds {} bytes",
            line.message.capacity()
        );
    }
    assert_healthy();
}

#[test]
fn huge_and_escape_laden_failure_messages_are_bounded_and_cleaned() {
    let err = run_hostile("fail_huge");
    let text = err.to_string();
    assert!(matches!(err.failure, RunFailure::Reported(_)), "{err:?}");
    assert!(text.len() < 5000, "{} bytes", text.len());
    assert!(text.ends_with('…'), "the cut is marked");
    assert_printable(&text);
    assert!(
        text.contains("\\u{1b}]0;pwned"),
        "escapes stay visible: {text}"
    );

    let err = run_hostile("fail_escapes");
    let text = err.to_string();
    assert_printable(&text);
    assert!(text.starts_with("plugin `hostile` node `fail_escapes`: invalid input: "));
    assert!(text.contains("\\u{1b}[2J\\u{d}\\u{a}"), "{text}");
    for line in &err.log_tail {
        assert_printable(line);
        assert!(line.contains("\\u{1b}[32m"), "{line}");
    }
}

#[test]
fn undeclared_output_names_are_bounded_and_cleaned() {
    let err = run_hostile("bad_output_name");
    assert!(
        matches!(err.failure, RunFailure::InvalidOutput(_)),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.len() < 1024, "{} bytes", text.len());
    assert_printable(&text);
    assert!(text.contains("is not declared"), "{text}");
}

#[test]
fn a_big_result_within_the_copy_budget_is_checked_as_an_output() {
    // 24 MiB is within the default copy budget (272 MiB): it crosses, then fails the checks.
    let err = run_hostile("big_text");
    match &err.failure {
        RunFailure::InvalidOutput(m) => assert!(m.contains("should be image, got text"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_result_over_the_copy_budget_is_reported_as_that_limit() {
    // With 1 Mi pixels as the image limit, the copy budget is 4 MiB + 16 MiB: 24 MiB of text is over.
    let mut config = common::test_config();
    config.default_limits.max_output_pixels = 1 << 20;
    let runtime = omnigen_plugins::PluginRuntime::new(config).expect("runtime");
    let plugin = common::load_with(
        &runtime,
        "hostile",
        "omnigen_plugin_hostile",
        Default::default(),
    );
    assert_eq!(plugin.limits().copy_budget_bytes(), 20 << 20);
    let err = plugin
        .run("big_text", vec![], &Map::new(), &CallControl::default())
        .unwrap_err();
    assert_eq!(err.failure, RunFailure::CopyBudget(20 << 20));
    assert!(
        err.to_string()
            .contains("tried to copy more than 20 MiB to the host in one go (the copy budget"),
        "{err}"
    );
}

#[test]
fn a_panic_in_describe_reports_the_panic_message() {
    let bytes = common::wasm("omnigen_plugin_describe_panic");
    let err = LoadedPlugin::from_bytes(
        common::runtime(),
        common::manifest_for("describe_panic", &bytes, Default::default()),
        std::path::Path::new("describe_panic.plugin.json"),
        &bytes,
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("plugin `describe_panic`: describe() failed: crashed"),
        "{text}"
    );
    assert!(
        text.contains("deliberate panic while describing a node"),
        "{text}"
    );
    assert!(!text.contains("wasi:cli"), "{text}");
    assert_healthy();
}
