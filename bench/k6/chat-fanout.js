// Fan-out with k6: VUS sockets join one room, each sends RATE messages/s; every message goes to
// every other socket. See README.md next to this file for tokens, the room and how to run it.
//
//   k6 run -e HOST=127.0.0.1:3000 -e TOKENS=tokens.json bench/k6/chat-fanout.js
//
// Env: HOST (127.0.0.1:3000), TOKENS (path to a JSON array of JWTs, one per VU; required),
// ROOM (bench-fanout), VUS (100), RATE (messages/s per VU, 1), DURATION (seconds, 30).
import { check } from 'k6'
import ws from 'k6/ws'
import { Counter, Trend } from 'k6/metrics'

const HOST = __ENV.HOST || '127.0.0.1:3000'
const ROOM = __ENV.ROOM || 'bench-fanout'
const VUS = Number(__ENV.VUS || 100)
const RATE = Number(__ENV.RATE || 1)
const DURATION = Number(__ENV.DURATION || 30)
/** After the last send, how long a socket stays open for the last deliveries and acks to arrive. */
const DRAIN_SECONDS = 2

if (!__ENV.TOKENS) throw new Error('set -e TOKENS=<file with a JSON array of JWTs> (see bench/k6/README.md)')
// open() works only in the init context: every VU reads the file once, at start.
const TOKENS = JSON.parse(open(__ENV.TOKENS))

// A 13-digit Date.now(), '|' and this: about 80 bytes, like a short chat line.
const FILLER = ' k6 fan-out bench message, filler text to make about eighty bytes'

const deliveryMs = new Trend('delivery_ms', true)
const ackMs = new Trend('ack_ms', true)
const messagesSent = new Counter('messages_sent')
const messagesAcked = new Counter('messages_acked')
const messagesDelivered = new Counter('messages_delivered')
const errors = new Counter('errors')

export const options = {
  scenarios: {
    // One long-lived socket per VU: a single iteration that lasts DURATION + DRAIN_SECONDS.
    fanout: { executor: 'per-vu-iterations', vus: VUS, iterations: 1, maxDuration: `${DURATION + DRAIN_SECONDS + 30}s` }
  },
  thresholds: {
    delivery_ms: ['p(99)<50'],
    ack_ms: ['p(99)<50']
  }
}

// The server answers a repeated clientMsgId (same user, same room) with the original ack and sends
// nothing, so a second run with the same users would measure no fan-out: setup() runs once and
// gives every VU the same run id to prefix their ids with.
export function setup () {
  return { run: String(Date.now()) }
}

export default function (data) {
  // VUs are numbered from 1; with fewer tokens than VUs, some users get several sockets.
  const token = TOKENS[(__VU - 1) % TOKENS.length]
  // The browser way to pass the token: subprotocols `chat.v1` and `bearer.<jwt>`.
  const params = { headers: { 'Sec-WebSocket-Protocol': `chat.v1, bearer.${token}` } }

  const res = ws.connect(`ws://${HOST}/ws`, params, function (socket) {
    const sentAt = {} // ref → Date.now() at send, for ack_ms
    let n = 0
    let sending = false

    socket.on('message', function (data) {
      const frame = JSON.parse(data)
      switch (frame.type) {
        case 'welcome':
          socket.send(JSON.stringify({ type: 'join', room: ROOM, ref: 'j' }))
          break
        case 'joined':
          if (frame.ref === 'j' && !sending) start()
          break
        case 'ack':
          if (sentAt[frame.ref] !== undefined) {
            ackMs.add(Date.now() - sentAt[frame.ref])
            delete sentAt[frame.ref]
            messagesAcked.add(1)
          }
          break
        case 'message':
          // The body starts with the sender's Date.now(): same process, same clock, ms resolution.
          if (frame.room === ROOM) {
            deliveryMs.add(Date.now() - Number(frame.body.split('|')[0]))
            messagesDelivered.add(1)
          }
          break
        case 'error':
          errors.add(1, { code: frame.code })
          break
      }
    })
    socket.on('error', function () { errors.add(1, { code: 'socket' }) })

    function start () {
      sending = true
      // k6/ws has no clearInterval: a flag stops the sends, a timeout closes the socket.
      socket.setInterval(function () {
        if (!sending) return
        n += 1
        const ref = String(n)
        const now = Date.now()
        sentAt[ref] = now
        socket.send(JSON.stringify({ type: 'message', room: ROOM, body: `${now}|${FILLER}`, clientMsgId: `${data.run}-${__VU}-${n}`, ref }))
        messagesSent.add(1)
      }, Math.max(1, Math.round(1000 / RATE)))
      socket.setTimeout(function () { sending = false }, DURATION * 1000)
      socket.setTimeout(function () { socket.close(1000) }, (DURATION + DRAIN_SECONDS) * 1000)
    }
  })

  check(res, { 'upgraded (101)': (r) => r !== undefined && r.status === 101 })
}
