// Trunk's initializer hooks (index.html, data-initializer): a visible line while the wasm downloads
// and compiles, so the page never looks frozen, and a named cause when it cannot start at all.

// The smallest module that uses a SIMD instruction (v128.const, drop): the build needs simd128
// (.cargo/config.toml), which a browser either validates or not.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 4, 1, 96, 0, 0, 3, 2, 1, 0, 10,
  23, 1, 21, 0, 253, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 26, 11]);

function line() {
  let el = document.getElementById('boot');
  if (!el) {
    el = document.createElement('p');
    el.id = 'boot';
    el.setAttribute('role', 'status');
    document.body.prepend(el);
  }
  return el;
}

export function cause(error) {
  if (typeof WebAssembly !== 'object') return 'This browser has no WebAssembly, which qtlab needs.';
  if (!WebAssembly.validate(SIMD_PROBE)) {
    return 'This browser lacks WebAssembly SIMD (Chrome/Edge 91+, Firefox 89+, Safari 16.4+ have it); '
      + 'qtlab\'s CPU path is built for it. Please update the browser.';
  }
  return `qtlab could not start: ${error?.message ?? error}. Reloading the page may help.`;
}

export default function initializer() {
  return {
    onStart: () => { line().textContent = 'Loading qtlab…'; },
    onProgress: ({ current, total }) => {
      const mb = (n) => (n / 1e6).toFixed(1);
      line().textContent = current < total
        ? `Loading qtlab… ${mb(current)} of ${mb(total)} MB`
        : 'Loading qtlab… compiling';
    },
    onSuccess: () => { document.getElementById('boot')?.remove(); },
    onFailure: (error) => {
      const el = line();
      el.classList.add('boot-error');
      el.textContent = cause(error);
    },
  };
}
