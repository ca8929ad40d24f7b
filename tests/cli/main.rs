//! End-to-end tests of the `omnigen` binary, driven the way a user drives it: a temporary working
//! directory with `input/`, a graph file, and the built binary run as a process.

mod interrupt;
mod nodes;
mod plugins;
mod run;
mod serve;
mod support;
mod train;
mod validate;
mod watch;
