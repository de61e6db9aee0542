import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  resolve: {
    // @jobstream/proto's sources: the console uses the same ts-proto messages as the admin.
    conditions: ['jobstream-source', 'browser', 'module', 'import', 'default'],
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    // No inline scripts or data: modules: the page's CSP allows scripts from the admin only.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 2_000,
    sourcemap: false,
  },
});
