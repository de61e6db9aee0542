import { GlueType } from '@jobstream/proto/types';
import type { ConformanceScriptKind } from './sdks.js';

/**
 * The same scripts in Shell, Python and Node.js, for the SDK conformance suite
 * (script-suite.ts) and the end-to-end test through a real admin (test/glue-e2e.test.ts).
 */

export const GLUE_TYPE: Record<ConformanceScriptKind, GlueType> = {
  SHELL: GlueType.GLUE_TYPE_SHELL,
  PYTHON: GlueType.GLUE_TYPE_PYTHON,
  NODEJS: GlueType.GLUE_TYPE_NODEJS,
};

const ENV_NAMES = [
  'JOBSTREAM_PARAM',
  'JOBSTREAM_SHARD_INDEX',
  'JOBSTREAM_SHARD_TOTAL',
  'JOBSTREAM_JOB_ID',
  'JOBSTREAM_LOG_ID',
] as const;

/** The scripts of one language. */
export interface Scripts {
  /** Prints `argv=<param>|<index>|<total>` and `env=<the five variables, |-joined>`, and a line to stderr. */
  report: string;
  /** Writes `problem 1` … `problem 100` to stderr and a line to stdout, exits 3. */
  fail: string;
  /** Starts `sleep 300` in the background, prints `grandchild <pid>`, then `tick` every 200 ms forever. */
  hold: string;
  /** Creates the file. */
  marker: (file: string) => string;
}

export const SCRIPTS: Record<ConformanceScriptKind, Scripts> = {
  SHELL: {
    report: [
      'echo "argv=$1|$2|$3"',
      `echo "env=${ENV_NAMES.map(name => `$${name}`).join('|')}"`,
      'echo "to stderr" >&2',
    ].join('\n'),
    fail: [
      'i=1',
      'while [ $i -le 100 ]; do echo "problem $i" >&2; i=$((i+1)); done',
      'echo "some output"',
      'exit 3',
    ].join('\n'),
    hold: ['sleep 300 &', 'echo "grandchild $!"', 'while :; do echo tick; sleep 0.2; done'].join('\n'),
    marker: file => `touch '${file}'`,
  },
  PYTHON: {
    report: [
      'import os, sys',
      "print('argv=' + '|'.join(sys.argv[1:]))",
      `print('env=' + '|'.join(os.environ[name] for name in ${JSON.stringify(ENV_NAMES)}))`,
      "print('to stderr', file=sys.stderr)",
    ].join('\n'),
    fail: [
      'import sys',
      "for i in range(1, 101): print(f'problem {i}', file=sys.stderr)",
      "print('some output')",
      'sys.exit(3)',
    ].join('\n'),
    hold: [
      'import subprocess, time',
      "child = subprocess.Popen(['sleep', '300'])",
      "print(f'grandchild {child.pid}', flush=True)",
      'while True:',
      "    print('tick', flush=True)",
      '    time.sleep(0.2)',
    ].join('\n'),
    marker: file => `open(${JSON.stringify(file)}, 'w').close()`,
  },
  NODEJS: {
    report: [
      "console.log('argv=' + process.argv.slice(2).join('|'));",
      `console.log('env=' + ${JSON.stringify(ENV_NAMES)}.map(name => process.env[name]).join('|'));`,
      "console.error('to stderr');",
    ].join('\n'),
    fail: [
      "for (let i = 1; i <= 100; i++) console.error('problem ' + i);",
      "console.log('some output');",
      'process.exitCode = 3;',
    ].join('\n'),
    hold: [
      "const { spawn } = require('node:child_process');",
      "const child = spawn('sleep', ['300'], { stdio: 'ignore' });",
      "console.log('grandchild ' + child.pid);",
      "setInterval(() => console.log('tick'), 200);",
    ].join('\n'),
    marker: file => `require('node:fs').writeFileSync(${JSON.stringify(file)}, '');`,
  },
};
