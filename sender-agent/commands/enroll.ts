// `sender-agent enroll`: make a key here, get it certified with a one-time invitation from the
// receiver's admin, and write <dir>/sender.json for replicate --config.
import { defineCommand } from '../../shared/command.js';

export const enroll = defineCommand({
  name: 'enroll',
  about: "makes a key here, gets it certified with a one-time invitation from the receiver's admin,\nwrites <dir>/sender.json for replicate --config",
  positionals: [{ name: '<invitation>', required: true, missing: 'enroll needs the invitation: sender-agent enroll <invitation> --out <dir>' }],
  options: {
    out: { type: 'string', arg: '<dir>', help: 'where the key, the certificates and sender.json go', required: true },
    force: { type: 'boolean', help: 'replace files already in <dir>' },
  },
  async run({ values: v, positionals: [invitation] }, io) {
    const { enroll: redeem } = await import('../enroll.js');
    const r = await redeem(invitation!, { out: v.out, force: v.force });
    io.out.write(
      `enrolled as "${r.identity}" (writes under ${r.root} on the receiver); key ${r.keyFile} (0600, never sent), certificate ${r.certFile}, fingerprint ${r.fingerprint}\n` +
        `replicate with: sender-agent replicate <pool/dataset> --to ${r.to} --name <name> --config ${r.config}\n`,
    );
    return 0;
  },
});
