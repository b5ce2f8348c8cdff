//! The page's browser plumbing that is not a component: the address bar, local storage,
//! downloads, uploads and the clipboard. Nothing here knows about runs.

use wasm_bindgen::{JsCast, JsValue};

/// The run's settings from the address: after '#', or, for a hand-typed link that has none
/// there, after '?' (then `true`, so the page can say where links keep them).
pub fn location_spec() -> (String, bool) {
    let loc = web_sys::window().map(|w| w.location());
    let part = |f: fn(&web_sys::Location) -> Result<String, JsValue>| {
        loc.as_ref().and_then(|l| f(l).ok()).unwrap_or_default()
    };
    let (hash, search) = (
        part(web_sys::Location::hash),
        part(web_sys::Location::search),
    );
    if hash.trim_start_matches('#').is_empty() && !search.trim_start_matches('?').is_empty() {
        (search, true)
    } else {
        (hash, false)
    }
}

/// Keeps the address bar current without adding a history entry per edit. The path without
/// its query: settings live after '#', and a stale '?' part would only confuse a reader.
pub fn replace_url(hash: &str) {
    if let Some(w) = web_sys::window()
        && let Ok(h) = w.history()
    {
        let path = w.location().pathname().unwrap_or_default();
        let _ = h.replace_state_with_url(&JsValue::NULL, "", Some(&format!("{path}#{hash}")));
    }
}

pub fn share_link(hash: &str) -> String {
    let base = web_sys::window()
        .and_then(|w| w.location().href().ok())
        .unwrap_or_default();
    let base = base.split('#').next().unwrap_or("").to_string();
    format!("{base}#{hash}")
}

/// Best effort: a page without clipboard permission still shows the link in the address bar.
pub fn copy_text(text: &str) {
    if let Some(w) = web_sys::window() {
        let _ = w.navigator().clipboard().write_text(text);
    }
}

/// Why a value could not be kept across reloads.
pub enum StoreError {
    /// The browser refused it, which in practice means the quota is used up.
    Full,
    /// No local storage at all (disabled, or a sandboxed frame).
    Unavailable,
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window().and_then(|w| w.local_storage().ok().flatten())
}

pub fn store(key: &str, value: &str) -> Result<(), StoreError> {
    let s = storage().ok_or(StoreError::Unavailable)?;
    s.set_item(key, value).map_err(|_| StoreError::Full)
}

pub fn stored(key: &str) -> Option<String> {
    storage()?.get_item(key).ok().flatten()
}

/// Offers `text` as a file named `name`.
pub fn download(name: &str, mime: &str, text: &str) {
    let parts = js_sys::Array::of1(&JsValue::from_str(text));
    let opts = web_sys::BlobPropertyBag::new();
    opts.set_type(mime);
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &opts) else {
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(doc) = web_sys::window().and_then(|w| w.document())
        && let Ok(a) = doc.create_element("a")
        && let Ok(a) = a.dyn_into::<web_sys::HtmlAnchorElement>()
    {
        a.set_href(&url);
        a.set_download(name);
        a.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

pub async fn read_file(file: web_sys::File) -> Result<Vec<u8>, String> {
    let buf = wasm_bindgen_futures::JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| "the file could not be read".to_string())?;
    Ok(js_sys::Uint8Array::new(&buf).to_vec())
}

/// The file a file input's change event picked. The input is cleared, so choosing the same
/// file again fires again.
pub fn input_file(ev: &leptos::ev::Event) -> Option<web_sys::File> {
    let input: web_sys::HtmlInputElement = ev.target()?.dyn_into().ok()?;
    let f = input.files()?.get(0);
    input.set_value("");
    f
}
