import { GlueType } from '@jobstream/proto/types';

/** The script kinds a job may have, as the admin accepts them (PHP: no executor runs it). */
export const SCRIPT_KINDS: readonly GlueType[] = [
  GlueType.GLUE_TYPE_SHELL,
  GlueType.GLUE_TYPE_PYTHON,
  GlueType.GLUE_TYPE_NODEJS,
  GlueType.GLUE_TYPE_POWERSHELL,
];

export function isScript(type: GlueType): boolean {
  return type !== GlueType.GLUE_TYPE_BEAN && type !== GlueType.GLUE_TYPE_UNSPECIFIED;
}

const KIND_LABELS: Partial<Record<GlueType, string>> = {
  [GlueType.GLUE_TYPE_BEAN]: 'Handler (BEAN)',
  [GlueType.GLUE_TYPE_SHELL]: 'Shell script',
  [GlueType.GLUE_TYPE_PYTHON]: 'Python script',
  [GlueType.GLUE_TYPE_NODEJS]: 'Node.js script',
  [GlueType.GLUE_TYPE_POWERSHELL]: 'PowerShell script',
  [GlueType.GLUE_TYPE_PHP]: 'PHP script',
};

export function kindLabel(type: GlueType): string {
  return KIND_LABELS[type] ?? `glue type ${type}`;
}
