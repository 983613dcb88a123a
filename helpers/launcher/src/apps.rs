//! The container's other apps (`--app=NAME`, the descriptor's `App=`):
//! each is another descriptor's imported application image, with its own
//! root at `/oci/apps/NAME/root` (its layers and `appglue/` under a
//! writable layer of the container's, `containers/MACHINE/apps/NAME`) and
//! its own units, `sdme-oci-app@NAME.service` and the rest, which the
//! import wrote as the image's `extraglue/` (sdme-import's units.rs, the
//! same writer as the first app's) and which is laid over the container's
//! root. The launcher only reads the store here; what it writes for an
//! app (environment, drop-ins, accounts) is in lib.rs, as for the first.

use sdme_import::units::Slot;
use sdme_launch::Launch as Options;
use sdme_store::record::ImageRecord;
use sdme_store::{Kind, Store};
use std::path::{Path, PathBuf};

pub struct ExtraApp<'a> {
    /// The `--app=` group: the image's name and the app's options.
    pub options: &'a Options,
    pub slot: Slot,
    pub record: ImageRecord,
    /// The image's layers and `appglue/`, lowest first: the app's root.
    pub lowers: Vec<PathBuf>,
    /// `extraglue/`: laid over the container's root.
    pub glue: PathBuf,
    /// The container's writable layer over the app's root.
    pub upper: PathBuf,
}

/// Reads each app's image from the store (the caller holds the store's
/// lock) and returns them with the generations they use, which the
/// container records with its own so that gc keeps them.
pub fn load<'a>(
    store: &Store,
    container: &Path,
    apps: &'a [Options],
) -> Result<(Vec<ExtraApp<'a>>, Vec<String>), String> {
    let mut out = Vec::new();
    let mut generations = Vec::new();
    for options in apps {
        let name = &options.image;
        sdme_store::check_name(name)?;
        let stack = store.root_stack(name)?;
        if stack.record.kind != Kind::App || stack.record.app.is_none() {
            return Err(format!(
                "--app={name}: image {name} is not an application image (it is a {})",
                stack.record.kind.as_str()
            ));
        }
        stack.record.check_glue()?;
        let lowers = store.app_lowers(&stack.generation, &stack.record)?;
        let glue = store.extra_glue(&stack.generation, &stack.record)?;
        for g in stack.generations {
            if !generations.contains(&g) {
                generations.push(g);
            }
        }
        out.push(ExtraApp {
            options,
            slot: Slot::Other(name.clone()),
            record: stack.record,
            lowers,
            glue,
            upper: container.join("apps").join(name),
        });
    }
    Ok((out, generations))
}
