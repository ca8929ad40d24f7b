//! Write omnigen plugin nodes in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2`. With this crate, a plugin author
//! implements [`Node`] once per node type and lists the nodes with [`plugin!`]; the crate hides the
//! generated component-model bindings.
//!
//! ```ignore
//! use omnigen_plugin_sdk::prelude::*;
//!
//! struct Invert;
//! impl Node for Invert {
//!     const ID: &'static str = "invert";
//!     fn spec() -> NodeSpec {
//!         NodeSpec::new("Invert colours")
//!             .category("image/color")
//!             .input(Port::image("image"))
//!             .output(Port::image("image"))
//!     }
//!     fn run(_ctx: &Context, mut inputs: Inputs, _params: &Params) -> Result<Outputs, NodeError> {
//!         let mut image = inputs.take_image("image")?;
//!         image.data.iter_mut().for_each(|b| *b = 255 - *b);
//!         Ok(Outputs::new().image("image", image))
//!     }
//! }
//!
//! omnigen_plugin_sdk::plugin!(name: "colors", version: "0.1.0", nodes: [Invert]);
//! ```

mod context;
mod io;
mod node;
mod params;
mod pixels;

/// The generated bindings of the `omnigen:plugin@0.1.0` world. Plugin code rarely needs them
/// directly: the SDK re-exports the value types in [`prelude`].
#[allow(missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../../wit",
        pub_export_macro: true,
        export_macro_name: "__export_plugin_world",
        default_bindings_module: "omnigen_plugin_sdk::bindings",
    });
}

pub use bindings::exports::omnigen::plugin::node::{NamedValue, NodeError, PluginInfo};
pub use bindings::omnigen::plugin::host::LogLevel;
pub use bindings::omnigen::plugin::types::{
    Image, Mask, NodeDescriptor, PixelFormat, Port as WitPort, Value, ValueKind,
};
pub use context::Context;
pub use io::{Inputs, Outputs};
pub use node::{Node, NodeSpec, Port};
pub use params::{ParamValue, Params};
pub use pixels::channels;

/// Everything a plugin usually needs: `use omnigen_plugin_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        channels, Context, Image, Inputs, LogLevel, Mask, Node, NodeError, NodeSpec, Outputs,
        ParamValue, Params, PixelFormat, Port, Value,
    };
}

#[doc(hidden)]
pub mod __private {
    pub use crate::context::install_panic_hook;
    pub use crate::node::{describe_node, run_node};
}

/// Declares the plugin: its name (the namespace of its nodes' class_type, equal to the manifest's
/// name), its version, and the types implementing [`Node`] it provides.
#[macro_export]
macro_rules! plugin {
    (name: $name:literal, version: $version:literal, nodes: [$($node:ty),+ $(,)?] $(,)?) => {
        struct __OmnigenPlugin;

        impl $crate::bindings::exports::omnigen::plugin::node::Guest for __OmnigenPlugin {
            fn describe() -> $crate::PluginInfo {
                // A panic in a node's `spec()` must reach the host log too, not WASI stderr.
                $crate::__private::install_panic_hook();
                $crate::PluginInfo {
                    name: ::std::string::String::from($name),
                    version: ::std::string::String::from($version),
                    nodes: ::std::vec![$($crate::__private::describe_node::<$node>()),+],
                }
            }

            fn run(
                node_id: ::std::string::String,
                inputs: ::std::vec::Vec<$crate::NamedValue>,
                params: ::std::string::String,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::NamedValue>, $crate::NodeError> {
                $crate::__private::install_panic_hook();
                $(
                    if node_id == <$node as $crate::Node>::ID {
                        return $crate::__private::run_node::<$node>(inputs, &params);
                    }
                )+
                ::std::result::Result::Err($crate::NodeError::InvalidInput(::std::format!(
                    "plugin {} has no node {:?}", $name, node_id
                )))
            }
        }

        $crate::bindings::__export_plugin_world!(__OmnigenPlugin with_types_in $crate::bindings);
    };
}
