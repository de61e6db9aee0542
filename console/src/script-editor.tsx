import { javascript } from '@codemirror/lang-javascript';
import { python } from '@codemirror/lang-python';
import { StreamLanguage } from '@codemirror/language';
import { powerShell } from '@codemirror/legacy-modes/mode/powershell';
import { shell } from '@codemirror/legacy-modes/mode/shell';
import { MergeView } from '@codemirror/merge';
import { EditorState, type Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import CodeMirror, { basicSetup } from '@uiw/react-codemirror';
import { useEffect, useMemo, useRef } from 'react';
import { GlueType } from '@jobstream/proto/types';
import { styleNonce } from './nonce.js';

/*
 * CodeMirror is large: this module is loaded only when a page shows a script (see
 * script-kinds.ts for what the rest of the console needs to know about kinds).
 */

/** Syntax highlighting for a script kind. */
function languageOf(kind: GlueType): Extension {
  switch (kind) {
    case GlueType.GLUE_TYPE_PYTHON:
      return python();
    case GlueType.GLUE_TYPE_NODEJS:
      return javascript();
    case GlueType.GLUE_TYPE_POWERSHELL:
      return StreamLanguage.define(powerShell);
    default:
      return StreamLanguage.define(shell);
  }
}

/** CodeMirror's own styles go into <style> elements: the page's CSP admits them by its nonce. */
const nonceExtension = EditorView.cspNonce.of(styleNonce);

/** A script's source, highlighted for its kind. */
export function ScriptEditor({
  kind,
  value,
  onChange,
  readOnly,
  label,
}: {
  kind: GlueType;
  value: string;
  onChange: (value: string) => void;
  readOnly: boolean;
  label: string;
}) {
  const extensions = useMemo(
    () => [nonceExtension, languageOf(kind), EditorView.contentAttributes.of({ 'aria-label': label })],
    [kind, label],
  );
  return (
    <div data-testid="script-editor" style={{ border: '1px solid var(--mantine-color-gray-4)' }}>
      <CodeMirror
        value={value}
        onChange={onChange}
        extensions={extensions}
        readOnly={readOnly}
        editable={!readOnly}
        minHeight="160px"
        maxHeight="420px"
        basicSetup={{ foldGutter: false, autocompletion: false }}
      />
    </div>
  );
}

/** Two versions of a script side by side, the changed lines marked. */
export function ScriptDiff({ kind, before, after }: { kind: GlueType; before: string; after: string }) {
  const parent = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const readOnly = [
      basicSetup({ foldGutter: false, autocompletion: false }),
      nonceExtension,
      languageOf(kind),
      EditorState.readOnly.of(true),
      EditorView.editable.of(false),
    ];
    const view = new MergeView({
      a: { doc: before, extensions: readOnly },
      b: { doc: after, extensions: readOnly },
      parent: parent.current!,
      collapseUnchanged: { margin: 3, minSize: 6 },
    });
    return () => view.destroy();
  }, [kind, before, after]);
  return (
    <div
      ref={parent}
      data-testid="script-diff"
      style={{ border: '1px solid var(--mantine-color-gray-4)', maxHeight: 420, overflow: 'auto' }}
    />
  );
}
