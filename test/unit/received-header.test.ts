/*
 * test/unit/received-header.test.ts — the Received: header Postern
 * prepends (smtp/received.ts), and a listener's `mask-src`, which leaves
 * the client's name and address out of it (OpenSMTPD's option): as a
 * function, and end to end through a daemon in this process. Also the name
 * a session goes by, which that header shows: `hostnames <T>`.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect as netConnect } from 'node:net';
import { localReceivedHeader, receivedHeader } from '../../src/smtp/received.js';
import { dialogue } from '../helpers/smtp-client.js';
import { startInProcess, type InProc } from '../helpers/inproc.js';

const date = new Date(Date.UTC(2026, 10, 22, 12, 0, 0));
const base = { helo: 'client.example', rdns: 'host.example', ip: '192.0.2.7', hostname: 'mx.example', proto: 'ESMTPS', msgid: '0123abcd', rcpt: 'u@example.org', tls: 'TLSv1.3:TLS_AES_256_GCM_SHA384:256', date };

describe('Received: header', () => {
  it('names the client, then the TLS session, then us', () => {
    const h = receivedHeader(base);
    assert.match(h, /^Received: from client\.example \(host\.example \[192\.0\.2\.7\]\)\r\n\t\(TLSv1\.3:TLS_AES_256_GCM_SHA384:256\)\r\n\tby mx\.example \(Postern\) with ESMTPS id 0123abcd\r\n\tfor <u@example\.org>;\r\n\t\w{3}, \d+ Nov 2026 /);
  });

  it('with mask-src, starts at "by": no HELO name, reverse name or address', () => {
    const h = receivedHeader({ ...base, maskSource: true });
    assert.match(h, /^Received: by mx\.example \(Postern\) with ESMTPS id 0123abcd\r\n\t\(TLSv1\.3:TLS_AES_256_GCM_SHA384:256\)\r\n\tfor <u@example\.org>;\r\n\t\w{3}, /);
    for (const leak of ['client.example', 'host.example', '192.0.2.7']) assert.ok(!h.includes(leak), `${leak} in ${h}`);
    const plain = receivedHeader({ ...base, maskSource: true, tls: undefined, rcpt: undefined });
    assert.match(plain, /^Received: by mx\.example \(Postern\) with ESMTPS id 0123abcd;\r\n\t\w{3}, [^\r\n]+\r\n$/);
  });

  it('of the local enqueue socket names the submitting uid, unless that listener masks it', () => {
    assert.match(localReceivedHeader({ hostname: 'mx.example', uid: 1000, msgid: '0123abcd', date }), /^Received: by mx\.example \(Postern, from userid 1000\)\r\n\tid 0123abcd; \w{3}, /);
    assert.match(localReceivedHeader({ hostname: 'mx.example', uid: 1000, msgid: '0123abcd', date, maskSource: true }), /^Received: by mx\.example \(Postern\)\r\n\tid 0123abcd; \w{3}, /);
  });
});

/** A daemon for test.example with these listeners (and tables). */
function daemonConfig(listeners: string): string {
  return `queue path "$DIR/spool"\nmbox path "$DIR/mail"\nhostname "mx.test.example"\n${listeners}\naction "local" mbox\nmatch from any for domain "test.example" action "local"\n`;
}

/** One message to root@test.example from client.example: the replies, and the message as queued. */
async function sendOne(srv: InProc, subject: string): Promise<{ replies: Awaited<ReturnType<typeof dialogue>>; id: string | undefined; message: { stored: { envelope: { client: { helo?: string } } }; body: string } | undefined }> {
  const c = await srv.client();
  const replies = await dialogue(c, `S: 220\nC: EHLO client.example\nS: 250\nC: MAIL FROM:<a@test.example>\nS: 250\nC: RCPT TO:<root@test.example>\nS: 250\nC: DATA\nS: 354\nC: Subject: ${subject}\nC:\nC: hello\nC: .\nS: 250 2.0.0\nC: QUIT\nS: 221`);
  c.close();
  const id = /250 2\.0\.0 ([0-9a-f]{8})/.exec(replies[5]?.text ?? '')?.[1];
  return { replies, id, message: (await srv.messages()).find((x) => x.stored.envelope.msgid === id) };
}

describe('listen on … mask-src', () => {
  let srv: InProc;
  before(async () => {
    srv = await startInProcess(daemonConfig('listen on 127.0.0.1 port 0 mask-src'));
  });
  after(async () => srv.close());

  it('queues the message with a Received: header that does not show the client', async () => {
    const { replies, id, message: m } = await sendOne(srv, 'masked');
    assert.ok(m, replies[5]?.text);
    assert.match(m.body, new RegExp(`^Received: by mx\\.test\\.example \\(Postern\\) with ESMTP id ${id}\\r\\n\\tfor <root@test\\.example>;\\r\\n`));
    assert.ok(!m.body.includes('client.example') && !m.body.includes('127.0.0.1'), m.body);
    // The envelope still records the client, for the log and smtpctl.
    assert.equal(m.stored.envelope.client.helo, 'client.example');
  });
});

describe('listen on … hostnames <T>', () => {
  let srv: InProc;
  before(async () => {
    srv = await startInProcess(
      daemonConfig(`table names { 127.0.0.1 = mx-one.test.example, 127.0.0.2 = "not a host name" }
listen on 127.0.0.1 port 0 hostnames <names>
listen on 127.0.0.2 port 0 hostnames <names>
listen on 127.0.0.3 port 0 hostnames <names>`),
    );
  });
  after(async () => srv.close());

  it('names the session after the local address the client reached: greeting, HELO reply and Received:', async () => {
    const { replies, message: m } = await sendOne(srv, 'named');
    assert.match(replies[0]?.text ?? '', /^220 mx-one\.test\.example /);
    assert.match(replies[1]?.lines[0] ?? '', /^250-mx-one\.test\.example /);
    assert.match(m?.body ?? '', /\tby mx-one\.test\.example \(Postern\)/);
  });

  it('falls back to the server\'s name for an address the table lacks, or a value that is no host name (logged)', async () => {
    const ports = srv.daemon.server.listeners.map((l) => l.port);
    for (const [host, port] of [['127.0.0.2', ports[1]], ['127.0.0.3', ports[2]]] as const) {
      const greeting = await new Promise<string>((resolve, reject) => {
        const s = netConnect({ host, port: port ?? 0 });
        let buf = '';
        s.on('data', (d: Buffer) => {
          buf += d.toString();
          if (buf.includes('\r\n')) {
            s.destroy();
            resolve(buf.slice(0, buf.indexOf('\r\n')));
          }
        });
        s.on('error', reject);
      });
      assert.match(greeting, /^220 mx\.test\.example /, host);
    }
    assert.ok(srv.logs.some((l) => l.includes('"not a host name" for 127.0.0.2 is not a host name')), srv.logs.join('\n'));
  });
});
