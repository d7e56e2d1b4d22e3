//! Integration tests: one test binary (link once), against real test hosts (Debian 12
//! containers with systemd and sshd, built by tests/hosts/testhosts). Run them with `tests/run`,
//! which makes sure the engine and the image exist first.

mod support;

mod aarch64_agent;
mod agent_relay;
mod cli_interrupt;
mod cli_inventory;
mod cli_local;
mod cli_tty;
mod day2;
mod deploy_failures;
mod deploy_multi;
mod deploy_single;
mod exchanges_feed;
mod fleet_lock;
mod install_clickhouse;
mod install_sources;
mod local_deploy;
mod nats_tls;
mod pipeline_flow;
mod report_cli;
mod report_deploy;
mod report_html;
mod rolling;
mod rolling_budgets;
mod slow_link;
mod ssh_auth;
mod ssh_facts;
mod ssh_host_keys;
mod ssh_transport;
mod static_agent;
mod user_services;
