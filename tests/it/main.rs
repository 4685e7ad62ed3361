//! The integration suite: one test binary that runs the real chatd, chatctl
//! and chat programs over real loopback sockets.

mod accounts;
mod bench_smoke;
mod boundaries;
mod chat_client;
mod chat_desk;
mod chat_protocol;
mod chat_tui;
mod cluster;
mod config;
mod contrib;
mod control;
mod direct;
mod faults;
mod flood;
mod hardening;
mod history;
mod irc;
mod moderation;
mod oidc;
mod operator;
mod private_rooms;
mod service;
mod support;
mod tls;
mod web;
