/** The CSP nonce the admin put into this page: Mantine's and CodeMirror's <style> elements carry it. */
export const styleNonce = document.querySelector<HTMLMetaElement>('meta[name="csp-nonce"]')?.content ?? '';

declare global {
  var __webpack_nonce__: string | undefined;
}

// react-remove-scroll-bar (Mantine's scroll lock while a modal is open) adds a <style> with
// the nonce it finds in this global, the bundler convention it follows; without it the
// page's CSP blocks that style and the page behind a modal keeps scrolling.
globalThis.__webpack_nonce__ = styleNonce;
