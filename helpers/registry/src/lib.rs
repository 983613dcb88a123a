//! Image sources: references, registry client, auth, local layouts, verified blob streams.
