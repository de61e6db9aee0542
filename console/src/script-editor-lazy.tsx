import { Loader } from '@mantine/core';
import { lazy, Suspense, type ComponentProps } from 'react';

/** The script editor and diff, loaded with CodeMirror on first use: most pages never show a script. */
const Editor = lazy(() => import('./script-editor.js').then(module => ({ default: module.ScriptEditor })));
const Diff = lazy(() => import('./script-editor.js').then(module => ({ default: module.ScriptDiff })));

type EditorProps = ComponentProps<typeof Editor>;
type DiffProps = ComponentProps<typeof Diff>;

export function ScriptEditor(props: EditorProps) {
  return (
    <Suspense fallback={<Loader size="sm" />}>
      <Editor {...props} />
    </Suspense>
  );
}

export function ScriptDiff(props: DiffProps) {
  return (
    <Suspense fallback={<Loader size="sm" />}>
      <Diff {...props} />
    </Suspense>
  );
}
