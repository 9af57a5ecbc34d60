//! Generated glue: the typed invoker of every RPC in the compiled protos, from the method table
//! that `switchyard-proto`'s build script writes. Nothing here names a method by hand.

use crate::invoke::Registry;

macro_rules! typed_registry {
    ($($name:literal => $req:ty, $resp:ty;)*) => {
        /// A registry holding the typed invoker of every compiled RPC.
        pub fn typed_registry() -> Registry {
            let mut registry = Registry::default();
            $( registry.typed::<$req, $resp>($name); )*
            registry
        }
    };
}

switchyard_proto::for_each_method!(typed_registry);
