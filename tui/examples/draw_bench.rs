//! Measures drawing the workstation with 20 tabs and 10,000 messages of scrollback in
//! the active one, into ratatui's in-memory `TestBackend` (so the figures are the
//! workstation's own work, without the terminal's I/O).
//!
//! Run: `cargo run --release -p kefu-tui --example draw_bench`

use std::time::{Duration, Instant};

use kefu_tui::app::{Action, App, NetEvent};
use kefu_tui::command::Command;
use kefu_tui::keymap::Keymap;
use kefu_tui::theme::Theme;
use kefu_tui::view;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

const TABS: i64 = 20;
const MESSAGES: u64 = 10_000;
const NOW: i64 = 1_763_683_200_000;

fn server(app: &mut App, frame: serde_json::Value) {
    app.update(Action::Server(serde_json::from_value(frame).expect("valid frame")));
}

fn main() {
    let mut app = App::new(Keymap::default_bindings(), Theme::default(), "bench".into(), NOW);
    app.update(Action::Net(NetEvent::Opened));
    let conversations: Vec<_> = (1..=TABS)
        .map(|id| {
            json!({
                "id": id, "state": "assigned", "channel": "web",
                "contact": {"id": id, "name": format!("顾客{id}"), "vip": id % 5 == 0},
                "last_seq": 0, "created_at": NOW,
            })
        })
        .collect();
    server(
        &mut app,
        json!({
            "type": "welcome", "protocol": 1,
            "session": {"kind": "agent",
                        "agent": {"id": 1, "name": "小王", "email": "w@x", "role": "agent", "max_concurrent": 25},
                        "presence": "online", "conversations": conversations},
            "limits": {"max_frame_bytes": 65536, "max_body_bytes": 32768, "frames_per_second": 50, "frame_burst": 200},
        }),
    );
    let bodies = [
        "你好，我的快递到哪了？订单号 20251120-8841，昨天就显示到上海了，今天能送到吗？",
        "Can I return these shoes? They are half a size too small and I bought them 12 days ago.",
        "**退货政策**：七天无理由退货，请保持包装完好，并附上`订单号`。详情见 [退货说明](https://shop.example/returns)",
    ];
    let load_start = Instant::now();
    for seq in 1..=MESSAGES {
        let customer = seq % 2 == 1;
        let author = if customer {
            json!({"kind": "customer", "id": 1})
        } else {
            json!({"kind": "agent", "id": 1, "name": "小王"})
        };
        let format = if seq % 3 == 0 { "markdown" } else { "text" };
        server(
            &mut app,
            json!({"type": "message", "conversation_id": 1, "seq": seq, "author": author,
                   "body": bodies[(seq % 3) as usize], "format": format, "at": NOW + seq as i64 * 1000}),
        );
    }
    for id in 2..=TABS {
        for seq in 1..=20u64 {
            server(
                &mut app,
                json!({"type": "message", "conversation_id": id, "seq": seq, "author": {"kind": "customer", "id": id},
                       "body": bodies[(seq % 3) as usize], "format": "text", "at": NOW}),
            );
        }
    }
    let load = load_start.elapsed();

    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("test backend");
    let mut draw = |app: &App| {
        let start = Instant::now();
        terminal.draw(|frame| view::draw(frame, app)).expect("draw");
        start.elapsed()
    };
    let first = draw(&app);
    let steady: Vec<Duration> = (0..200).map(|_| draw(&app)).collect();
    let mut scrolling = Vec::new();
    for _ in 0..200 {
        app.update(Action::Run(Command::PageUp));
        scrolling.push(draw(&app));
    }
    app.update(Action::Run(Command::ScrollTop));
    let top = draw(&app);
    let mut tab_switch = Vec::new();
    for _ in 0..TABS {
        app.update(Action::Run(Command::NextTab));
        tab_switch.push(draw(&app));
    }

    let stats = |name: &str, samples: &mut Vec<Duration>| {
        samples.sort();
        let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
        let p99 = samples[(samples.len() * 99 / 100).min(samples.len() - 1)];
        let max = samples[samples.len() - 1];
        println!("{name:<32} mean {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms", ms(mean), ms(p99), ms(max));
    };
    println!("workstation drawing: {TABS} tabs, {MESSAGES} messages in the active tab, 160x48 cells");
    println!("{:<32} {:>8.1} ms (10,380 message frames through App::update)", "load history", ms(load));
    println!("{:<32} {:>8.3} ms", "first frame (lays out the screen)", ms(first));
    stats("steady frame (nothing changed)", &mut steady.clone());
    stats("page up + frame", &mut scrolling);
    println!("{:<32} {:>8.3} ms", "jump to top + frame", ms(top));
    stats("next tab + frame", &mut tab_switch);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
