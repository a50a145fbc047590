//! The relay's TOML config (`--config`). Reading it must never panic; a config it accepts
//! must mean one thing (written back out, it reads again to the same config) and must
//! work: what the relay computes and builds from it at start-up and per connection
//! (durations in milliseconds from now, the hello deadline, its connection semaphore and
//! queues, rate quotas, alert rules) must not overflow or panic.
//!
//! Input: TOML text as it is; or, after a 0xFF byte (never in UTF-8), edits to a known
//! config: the defaults or a seed, with a few of its keys (or the seeds' keys) set to
//! values of their type or another, integers spread over their whole range. Mutating text
//! alone rarely writes a number big enough to matter in the one place that takes it.
#![no_main]

use std::num::NonZeroU32;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use kefu_relay::config::Config;
use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use toml::{Table, Value};

/// With `KEFU_FUZZ_PRINT` set, each input's TOML is printed: an edited config's text, to
/// put in a regression test, is not in the input's bytes.
static PRINT: LazyLock<bool> = LazyLock::new(|| std::env::var_os("KEFU_FUZZ_PRINT").is_some());

/// A time in milliseconds the relay may run at (2027).
const NOW_MS: i64 = 1_800_000_000_000;

fuzz_target!(|data: &[u8]| {
    let text = match data.split_first() {
        Some((0xFF, rest)) => match edited(&mut Unstructured::new(rest)) {
            Ok(text) => text,
            Err(_) => return,
        },
        _ => match std::str::from_utf8(data) {
            Ok(text) => text.to_string(),
            Err(_) => return,
        },
    };
    if *PRINT {
        eprintln!("{text}");
    }
    let Ok(config) = Config::from_toml(&text) else { return };
    check_accepted(&text, &config);
});

fn check_accepted(text: &str, config: &Config) {
    let written = toml::to_string(config).expect("an accepted config serialises");
    let again = Config::from_toml(&written).unwrap_or_else(|e| panic!("{text:?} written as {written:?}: {e}"));
    assert_eq!(toml::to_string(&again).expect("serialises"), written, "{text:?}");

    config.alerts.rules().expect("an accepted config has alert rules");
    let _ = config.routing.reroute_ms();
    let _ = config.routing.sticky_window_ms();
    let _ = config.retention.cutoff(NOW_MS);

    // Every duration the relay turns into milliseconds and adds to (or takes from) now.
    let seconds = [
        ("auth.lockout_first_secs", config.auth.lockout_first_secs),
        ("auth.lockout_max_secs", config.auth.lockout_max_secs),
        ("routing.grace_secs", config.routing.grace_secs),
        ("routing.reroute_unanswered_secs", config.routing.reroute_unanswered_secs),
        ("channels.retry_first_secs", config.channels.retry_first_secs),
        ("channels.retry_max_secs", config.channels.retry_max_secs),
        ("channels.signature_tolerance_secs", config.channels.signature_tolerance_secs),
        ("alerts.wait_secs", config.alerts.wait_secs),
        ("alerts.reply_secs", config.alerts.reply_secs),
        ("bot.llm.pause_secs", config.bot.llm.as_ref().map_or(0, |llm| llm.pause_secs)),
    ];
    let hours = [
        ("auth.token_ttl_hours", config.auth.token_ttl_hours),
        ("routing.sticky_window_hours", config.routing.sticky_window_hours),
    ];
    let in_ms =
        seconds.iter().map(|&(name, n)| (name, n, 1000)).chain(hours.iter().map(|&(name, n)| (name, n, 3_600_000)));
    for (name, n, unit) in in_ms {
        let ms = i64::try_from(n).ok().and_then(|n| n.checked_mul(unit));
        let fits = ms.is_some_and(|ms| NOW_MS.checked_add(ms).is_some() && NOW_MS.checked_sub(ms).is_some());
        assert!(fits, "{name} = {n} does not fit in milliseconds from now");
    }
    // The supervision state keeps twice the CSAT window of ratings.
    assert!(config.alerts.csat_window.checked_mul(2).is_some(), "alerts.csat_window = {}", config.alerts.csat_window);

    // A connection's hello deadline.
    let hello = Duration::from_secs(config.limits.hello_timeout_secs);
    assert!(Instant::now().checked_add(hello).is_some(), "limits.hello_timeout_secs = {}", hello.as_secs());
    // The connection semaphore, a connection's outbound queue, the journal's queue.
    let _ = tokio::sync::Semaphore::new(config.limits.max_connections);
    let _ = tokio::sync::mpsc::channel::<()>(config.limits.outbound_queue);
    let _ = tokio::sync::mpsc::channel::<()>(config.journal.queue);
    assert!(NonZeroU32::new(config.limits.frames_per_second).is_some());
}

/// Configs to edit: the defaults as the relay writes them, and the seeds (which also set
/// the optional keys the defaults leave out).
static BASES: LazyLock<Vec<Table>> = LazyLock::new(|| {
    let defaults = Table::try_from(Config::default()).expect("the defaults are a table");
    let seeds = [
        include_str!("../seeds/relay_config/bot_llm_automations.toml"),
        include_str!("../seeds/relay_config/alerts_overnight.toml"),
        include_str!("../seeds/relay_config/privacy_metrics_retention.toml"),
        include_str!("../seeds/relay_config/tls.toml"),
        include_str!("../seeds/relay_config/proxies.toml"),
    ];
    std::iter::once(defaults).chain(seeds.iter().map(|s| s.parse::<Table>().expect("seeds parse"))).collect()
});

/// One step of a path into a config: a key, or an index into an array of tables.
#[derive(Clone)]
enum Step {
    Key(String),
    Index(usize),
}

/// Every key of every base with a value that is not a table, and that value.
static LEAVES: LazyLock<Vec<(Vec<Step>, Value)>> = LazyLock::new(|| {
    fn walk(table: &Table, path: &mut Vec<Step>, out: &mut Vec<(Vec<Step>, Value)>) {
        for (key, value) in table {
            path.push(Step::Key(key.clone()));
            match value {
                Value::Table(inner) => walk(inner, path, out),
                Value::Array(items) if items.iter().all(Value::is_table) && !items.is_empty() => {
                    for (i, item) in items.iter().enumerate() {
                        path.push(Step::Index(i));
                        walk(item.as_table().expect("checked"), path, out);
                        path.pop();
                    }
                }
                _ => out.push((path.clone(), value.clone())),
            }
            path.pop();
        }
    }
    let mut out = Vec::new();
    for base in BASES.iter() {
        walk(base, &mut Vec::new(), &mut out);
    }
    out
});

/// A base with one to four keys set, written out.
fn edited(u: &mut Unstructured) -> arbitrary::Result<String> {
    let mut doc = u.choose(&BASES)?.clone();
    for _ in 0..u.int_in_range(1..=4)? {
        let (path, sample) = u.choose(&LEAVES)?;
        let value = value_like(u, sample)?;
        set(&mut doc, path, value);
    }
    Ok(toml::to_string(&doc).unwrap_or_default())
}

/// A value of the sample's type (now and then of another), spread over its range.
fn value_like(u: &mut Unstructured, sample: &Value) -> arbitrary::Result<Value> {
    if u.ratio(1, 8)? {
        return Ok(match u.choose_index(4)? {
            0 => Value::Integer(integer(u)?),
            1 => Value::Float(u.arbitrary()?),
            2 => Value::String(u.arbitrary()?),
            _ => Value::Boolean(u.arbitrary()?),
        });
    }
    Ok(match sample {
        Value::Integer(_) => Value::Integer(integer(u)?),
        Value::Float(_) => Value::Float(u.arbitrary()?),
        Value::String(_) => Value::String(u.arbitrary()?),
        Value::Boolean(_) => Value::Boolean(u.arbitrary()?),
        Value::Array(items) => {
            let like = items.first().cloned().unwrap_or(Value::String(String::new()));
            let len = u.int_in_range(0..=3)?;
            Value::Array((0..len).map(|_| value_like(u, &like)).collect::<arbitrary::Result<_>>()?)
        }
        other => other.clone(),
    })
}

/// Small numbers, the types' edges, or anything.
fn integer(u: &mut Unstructured) -> arbitrary::Result<i64> {
    const EDGES: [i64; 8] =
        [0, 1, -1, i64::MAX, i64::MIN, i32::MIN as i64, u32::MAX as i64, (usize::MAX >> 3) as i64 + 1];
    Ok(match u.choose_index(3)? {
        0 => u.int_in_range(-10..=100_000)?,
        1 => *u.choose(&EDGES)?,
        _ => u.arbitrary()?,
    })
}

/// Sets the value at `path`, making the tables on the way; an index past an array's end is
/// left alone.
fn set(doc: &mut Table, path: &[Step], value: Value) {
    let Some((last, parents)) = path.split_last() else { return };
    let mut here = doc;
    for (i, step) in parents.iter().enumerate() {
        let next = match step {
            Step::Key(key) => {
                let empty = match parents.get(i + 1) {
                    Some(Step::Index(_)) => Value::Array(vec![Value::Table(Table::new())]),
                    _ => Value::Table(Table::new()),
                };
                here.entry(key.clone()).or_insert(empty)
            }
            Step::Index(_) => continue,
        };
        let next = match (next, parents.get(i + 1)) {
            (Value::Array(items), Some(Step::Index(n))) => items.get_mut(*n),
            (value @ Value::Table(_), _) => Some(value),
            _ => None,
        };
        match next.and_then(Value::as_table_mut) {
            Some(table) => here = table,
            None => return,
        }
    }
    if let Step::Key(key) = last {
        here.insert(key.clone(), value);
    }
}
