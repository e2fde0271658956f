/*
 * The shape Postern keeps (docs/architecture.md, "Layers"), checked by
 * `npm test` (scripts/check-deps.mjs): no import cycle between files, and
 * no folder importing a folder of a higher layer. A folder may import its
 * own layer's other folders only where that makes no cycle.
 */
const LAYERS = [
  /* 0, the ground floor: shared words, importing nothing above */ ['mail', 'net', 'time', 'users', 'wire', 'log', 'metrics', 'privsep', 'stats.ts'],
  /* 1 */ ['config'],
  /* 2, services every part uses */ ['table', 'dns', 'tls'],
  /* 3 */ ['auth', 'spool', 'rules', 'cluster'],
  /* 4, recipient expansion; mail authentication (SPF, DKIM, DMARC, ARC; DKIM signing) */ ['expand', 'mailauth'],
  /* 5, verdicts, the checks at the door, filters and delivery agents */ ['policy', 'antispam', 'delivery', 'transport-security', 'filter'],
  /* 6, the one way into the queue */ ['queue'],
  /* 7 */ ['bounce', 'mta'],
  /* 8, the parts that run */ ['scheduler', 'smtp', 'submit'],
  /* 9 */ ['control'],
  /* 10, the HTTP listener: metrics, the API over the control handlers, the dashboard */ ['http'],
  /* 11 */ ['daemon'],
  /* 12 */ ['cli'],
];
const re = (names) => `^src/(${names.map((n) => n.replace('.', '\\.')).join('|')})(/|$)`;

module.exports = {
  forbidden: [
    { name: 'no-circular', comment: 'No import cycle between files.', severity: 'error', from: {}, to: { circular: true } },
    ...LAYERS.slice(0, -1).map((layer, i) => ({
      name: `layer-${i}`,
      comment: `Layer ${i} (${layer.join(', ')}) imports nothing from a higher layer.`,
      severity: 'error',
      from: { path: re(layer) },
      to: { path: re(LAYERS.slice(i + 1).flat()) },
    })),
    { name: 'spool-backends-hidden', comment: 'Only the daemon and the commands name a spool backend; everything else uses spool/spool.ts.', severity: 'error', from: { path: '^src/', pathNot: '^src/(spool|daemon|cli)/' }, to: { path: '^src/spool/[^/]+/' } },
    { name: 'not-to-unresolvable', severity: 'error', from: {}, to: { couldNotResolve: true } },
  ],
  options: {
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
