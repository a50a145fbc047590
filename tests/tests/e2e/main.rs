//! End-to-end tests: the real relay, real sockets, the real protocol. One test binary;
//! one module per area.

mod agent_tools;
mod bot;
mod channel_api;
mod channels;
mod crash;
mod encryption;
mod foundation;
mod isolation;
mod knowledge;
mod privacy;
mod reports;
mod routing;
mod security;
mod supervision;
mod tickets;
mod tls;
mod tui;
mod widget;
