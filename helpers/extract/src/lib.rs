//! Layer extraction with OCI image-spec semantics, confined to a root directory by fd.
