// The demo chat page: plain DOM on top of /client.js. Every piece of user text goes through
// textContent (never innerHTML), and the page runs under a CSP without inline script or style.
import { ChatClient } from '/client.js'

const SESSION_KEY = 'chat.session'
const HISTORY_PAGE = 50
/** Rooms joined on the socket at once, so their unread counts stay live; more are opened on demand. */
const MAX_JOINED = 50
/** Messages by the same author closer than this share one header. */
const GROUP_MS = 5 * 60 * 1000
/** A typing indicator the server never stopped (lost frame) goes away after this. */
const TYPING_STALE_MS = 7000

const $ = (id) => document.getElementById(id)
const view = {
  boot: $('boot'),
  connection: $('connection'),
  auth: $('auth-view'),
  authForm: $('auth-form'),
  username: $('username'),
  password: $('password'),
  authError: $('auth-error'),
  login: $('login'),
  register: $('register'),
  chat: $('chat-view'),
  sidebar: $('sidebar'),
  menu: $('menu'),
  meAvatar: $('me-avatar'),
  meName: $('me-name'),
  logout: $('logout'),
  roomList: $('room-list'),
  roomForm: $('room-form'),
  roomId: $('room-id'),
  roomPrivate: $('room-private'),
  roomError: $('room-error'),
  title: $('room-title'),
  onlineCount: $('online-count'),
  online: $('online'),
  messages: $('messages'),
  historyStatus: $('history-status'),
  typing: $('typing'),
  composer: $('composer'),
  message: $('message'),
  send: $('send')
}

// ---- Session: the refresh token and the user in localStorage, the access token in memory only.

class SessionExpired extends Error {}

let session = null // { user, refreshToken }
let accessToken = null
/** A token fresh from login or refresh that the socket has not used yet: its first connect needs no second refresh. */
let unusedToken = null
let refreshing = null

function loadSession () {
  try {
    const stored = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null')
    if (typeof stored?.refreshToken === 'string' && typeof stored?.user?.id === 'string') return stored
  } catch {}
  return null
}

function saveSession (user, refreshToken) {
  session = { user, refreshToken }
  localStorage.setItem(SESSION_KEY, JSON.stringify(session))
}

function tookTokens (body) {
  saveSession(body.user, body.refreshToken)
  accessToken = body.token
  unusedToken = body.token
}

/** One refresh at a time in this tab, and across tabs of the same browser where Web Locks exist:
 * a refresh token is spent once, and sending a spent one revokes the whole login. */
function refresh () {
  refreshing ??= (async () => {
    const run = async () => {
      // Another tab of the same user may have rotated the token since: use the newest one.
      const stored = loadSession()
      const refreshToken = stored !== null && stored.user.id === session?.user.id ? stored.refreshToken : session?.refreshToken
      if (refreshToken === undefined) throw new SessionExpired('not logged in')
      const response = await fetch('/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refreshToken })
      })
      if (response.status === 401) throw new SessionExpired('your session has ended, log in again')
      if (!response.ok) throw Object.assign(new Error(`refresh failed (${response.status})`), { code: 'unavailable' })
      tookTokens(await response.json())
      return accessToken
    }
    return navigator.locks !== undefined ? await navigator.locks.request('chat.refresh', run) : await run()
  })()
  refreshing.finally(() => { refreshing = null }).catch(() => {})
  return refreshing.catch((error) => {
    if (error instanceof SessionExpired) signedOut(error.message)
    throw error
  })
}

/** What the client calls on every (re)connect and before the token expires. */
async function tokenForSocket () {
  if (unusedToken !== null) {
    const token = unusedToken
    unusedToken = null
    return token
  }
  return await refresh()
}

/** JSON over REST with the access token; a 401 gets one refresh and one retry. */
async function api (method, path, body) {
  const attempt = async () => await fetch(path, {
    method,
    headers: { authorization: `Bearer ${accessToken}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  let response = await attempt()
  if (response.status === 401) {
    await refresh()
    response = await attempt()
  }
  const text = await response.text()
  const data = text === '' ? null : JSON.parse(text)
  if (!response.ok) throw Object.assign(new Error(data?.message ?? `request failed (${response.status})`), { code: data?.error, status: response.status })
  return data
}

async function postJson (path, body) {
  const response = await fetch(path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  const text = await response.text()
  const data = text === '' ? null : JSON.parse(text)
  if (!response.ok) throw Object.assign(new Error(data?.message ?? `request failed (${response.status})`), { code: data?.error, status: response.status })
  return data
}

// ---- Sign in

function showAuth (message = '') {
  view.boot.hidden = true
  view.chat.hidden = true
  view.auth.hidden = false
  view.connection.hidden = true
  view.authError.textContent = message
  view.password.value = ''
  view.username.focus()
}

function authBusy (busy) {
  view.login.disabled = busy
  view.register.disabled = busy
}

async function logIn (username, password) {
  tookTokens(await postJson('/auth/login', { username, password }))
  view.password.value = ''
  await startChat()
}

view.authForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!view.authForm.reportValidity()) return
  authBusy(true)
  view.authError.textContent = ''
  try {
    await logIn(view.username.value.trim(), view.password.value)
  } catch (error) {
    view.authError.textContent = error.status === 401 ? 'Wrong username or password.' : error.message
  } finally {
    authBusy(false)
  }
})

view.register.addEventListener('click', async () => {
  if (!view.authForm.reportValidity()) return
  authBusy(true)
  view.authError.textContent = ''
  const username = view.username.value.trim()
  try {
    await postJson('/auth/register', { username, password: view.password.value })
    await logIn(username, view.password.value)
  } catch (error) {
    view.authError.textContent = error.code === 'conflict' ? 'That username is taken: pick another, or log in.' : error.message
  } finally {
    authBusy(false)
  }
})

view.logout.addEventListener('click', async () => {
  const refreshToken = session?.refreshToken
  signedOut('')
  if (refreshToken !== undefined) await postJson('/auth/logout', { refreshToken }).catch(() => {})
})

function signedOut (message) {
  stopChat()
  session = null
  accessToken = null
  unusedToken = null
  localStorage.removeItem(SESSION_KEY)
  showAuth(message)
}

// ---- Chat state

let client = null
let wasOpen = false
/** Room resource by id, as `GET /rooms` returns it, plus the page's own bookkeeping. */
const rooms = new Map()
let openRoomId = null

function roomState (room) {
  let state = rooms.get(room.id)
  if (state === undefined) {
    state = {
      info: room,
      handle: null,
      messages: new Map(), // seq → Message, the page's copy of what it shows
      oldestSeq: null,
      hasMore: true,
      loadingOlder: false,
      historyLoaded: false,
      readSeqs: new Map(), // userId → { username, readSeq } of other people
      typing: new Map(), // userId → { username, timer }
      pending: [] // own sends not acked yet: { body, element }
    }
    rooms.set(room.id, state)
  } else {
    state.info = { ...state.info, ...room }
  }
  return state
}

async function startChat () {
  view.boot.hidden = true
  view.auth.hidden = true
  view.chat.hidden = false
  view.meName.textContent = session.user.username
  paintAvatar(view.meAvatar, session.user.username)
  wasOpen = false
  client = new ChatClient({ url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`, token: tokenForSocket })
  client.on('state', onState)
  client.on('error', (error) => {
    if (error?.code === 'unauthorized') signedOut('Your session has ended, log in again.')
  })
  try {
    const { rooms: list } = await api('GET', '/rooms')
    for (const room of list) roomState(room)
  } catch (error) {
    if (error instanceof SessionExpired) return
    setConnection(`Could not load rooms: ${error.message}`)
  }
  renderRooms()
  let joined = 0
  for (const state of rooms.values()) {
    if (joined++ >= MAX_JOINED) break
    attach(state)
  }
  const wanted = decodeURIComponent(location.hash.slice(1))
  const first = rooms.has(wanted) ? wanted : rooms.has('general') ? 'general' : rooms.keys().next().value
  if (first !== undefined) await openRoom(first)
  else showEmpty()
}

function stopChat () {
  client?.close()
  client = null
  for (const state of rooms.values()) {
    for (const { timer } of state.typing.values()) clearTimeout(timer)
  }
  rooms.clear()
  openRoomId = null
  view.roomList.replaceChildren()
  clearMessages()
}

function onState (state) {
  if (state === 'open') {
    if (wasOpen) setConnection('Connected', true)
    else setConnection(null)
    wasOpen = true
  } else if (state === 'connecting') {
    setConnection(wasOpen ? 'Reconnecting…' : 'Connecting…')
  }
}

let connectionTimer
function setConnection (text, ok = false) {
  clearTimeout(connectionTimer)
  if (text === null) {
    view.connection.hidden = true
    return
  }
  view.connection.textContent = text
  view.connection.classList.toggle('ok', ok)
  view.connection.hidden = false
  if (ok) connectionTimer = setTimeout(() => { view.connection.hidden = true }, 2000)
}

/** Joins the room on the socket (once; the client re-joins by itself after reconnects). */
function attach (state) {
  if (state.handle !== null) return state.handle
  const room = client.room(state.info.id)
  state.handle = room
  room.on('message', (message) => onMessage(state, message))
  room.on('typing', (event) => onTyping(state, event))
  room.on('presence', () => { if (state.info.id === openRoomId) renderOnline(state) })
  room.on('receipt', (event) => onReceipt(state, event))
  room.join().then(() => {
    if (state.info.id !== openRoomId) return
    renderOnline(state)
    markRead(state)
  }, (error) => {
    if (state.info.id === openRoomId) view.historyStatus.textContent = `Could not join: ${error.message}`
  })
  return room
}

// ---- Rooms

function renderRooms () {
  const items = [...rooms.values()].sort((a, b) => a.info.id.localeCompare(b.info.id)).map((state) => {
    const { id, title, unread } = state.info
    const li = document.createElement('li')
    const button = document.createElement('button')
    button.type = 'button'
    button.dataset.room = id
    if (id === openRoomId) button.setAttribute('aria-current', 'true')
    const hash = document.createElement('span')
    hash.className = 'hash'
    hash.setAttribute('aria-hidden', 'true')
    hash.textContent = state.info.private ? '🔒' : '#'
    const name = document.createElement('span')
    name.className = 'room-name'
    name.textContent = title || id
    button.append(hash, name)
    const count = id === openRoomId ? 0 : unread
    if (count > 0) {
      li.className = 'unread'
      const badge = document.createElement('span')
      badge.className = 'badge'
      badge.textContent = count > 99 ? '99+' : String(count)
      badge.setAttribute('aria-label', `${count} unread`)
      button.append(badge)
    }
    li.append(button)
    return li
  })
  view.roomList.replaceChildren(...items)
}

view.roomList.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-room]')
  if (button !== null) {
    openRoom(button.dataset.room)
    toggleSidebar(false)
  }
})

function toggleSidebar (open) {
  view.sidebar.classList.toggle('open', open)
  view.menu.setAttribute('aria-expanded', String(open))
}

view.menu.addEventListener('click', () => toggleSidebar(!view.sidebar.classList.contains('open')))
// The drawer (narrow screens) closes like a dialog: Escape, or a tap beside it.
document.addEventListener('keydown', (event) => {
  if (event.key === 'Escape' && view.sidebar.classList.contains('open')) {
    toggleSidebar(false)
    view.menu.focus()
  }
})
document.querySelector('.pane').addEventListener('click', (event) => {
  if (view.sidebar.classList.contains('open') && !view.menu.contains(event.target)) toggleSidebar(false)
})

view.roomForm.addEventListener('submit', async (event) => {
  event.preventDefault()
  if (!view.roomForm.reportValidity()) return
  view.roomError.textContent = ''
  const id = view.roomId.value.trim()
  try {
    roomState(await api('POST', '/rooms', { id, private: view.roomPrivate.checked }))
  } catch (error) {
    if (error.code !== 'conflict') {
      view.roomError.textContent = error.message
      return
    }
    // It exists: join it if we may see it (a public room, or a private one we are in).
    try {
      roomState(await api('GET', `/rooms/${encodeURIComponent(id)}`))
    } catch {
      view.roomError.textContent = 'That room exists and is private.'
      return
    }
  }
  view.roomId.value = ''
  view.roomPrivate.checked = false
  renderRooms()
  await openRoom(id)
})

// ---- The open room

function showEmpty () {
  view.title.textContent = 'No rooms yet'
  view.onlineCount.textContent = 'Create one in the sidebar.'
  view.composer.hidden = true
}

async function openRoom (id) {
  const state = rooms.get(id)
  if (state === undefined || id === openRoomId) return
  if (openRoomId !== null) rooms.get(openRoomId)?.handle?.typing(false)
  openRoomId = id
  history.replaceState(null, '', `#${encodeURIComponent(id)}`)
  view.composer.hidden = false
  view.title.textContent = state.info.title ? `${state.info.title}` : `# ${id}`
  document.title = `${state.info.title || '#' + id} · Chat`
  view.message.placeholder = `Message ${state.info.title || '#' + id}`
  state.info.unread = 0
  renderRooms()
  clearMessages()
  renderTyping(state)
  attach(state)
  renderOnline(state)
  if (!state.historyLoaded) {
    view.historyStatus.textContent = 'Loading messages…'
    await Promise.all([loadHistory(state), loadReceipts(state)])
    if (openRoomId !== id) return
  }
  renderAllMessages(state)
  scrollToBottom()
  markRead(state)
  view.message.focus()
}

async function loadHistory (state) {
  try {
    const { messages, hasMore } = await api('GET', `/rooms/${encodeURIComponent(state.info.id)}/messages?limit=${HISTORY_PAGE}`)
    for (const message of messages) state.messages.set(message.seq, message)
    state.hasMore = hasMore
    state.historyLoaded = true
  } catch (error) {
    view.historyStatus.textContent = `Could not load messages: ${error.message}`
  }
}

async function loadReceipts (state) {
  try {
    const { receipts } = await api('GET', `/rooms/${encodeURIComponent(state.info.id)}/receipts`)
    for (const { userId, username, readSeq } of receipts) {
      if (userId === session.user.id) continue
      const known = state.readSeqs.get(userId)
      if (known === undefined || known.readSeq < readSeq) state.readSeqs.set(userId, { username, readSeq })
    }
  } catch {}
}

async function loadOlder (state) {
  if (state.loadingOlder || !state.hasMore || !state.historyLoaded) return
  const oldest = Math.min(...state.messages.keys())
  if (!Number.isFinite(oldest) || oldest <= 1) {
    state.hasMore = false
    renderHistoryStatus(state)
    return
  }
  state.loadingOlder = true
  view.historyStatus.textContent = 'Loading older messages…'
  try {
    const { messages, hasMore } = await api('GET', `/rooms/${encodeURIComponent(state.info.id)}/messages?limit=${HISTORY_PAGE}&before=${oldest}`)
    state.hasMore = hasMore
    if (state.info.id !== openRoomId) return
    // Keep what the reader is looking at in place while older messages appear above it.
    const before = view.messages.scrollHeight
    for (const message of messages) {
      if (state.messages.has(message.seq)) continue
      state.messages.set(message.seq, message)
      insertMessage(state, message)
    }
    view.messages.scrollTop += view.messages.scrollHeight - before
  } catch (error) {
    view.historyStatus.textContent = `Could not load older messages: ${error.message}`
    return
  } finally {
    state.loadingOlder = false
  }
  renderHistoryStatus(state)
  renderReceipts(state)
}

view.messages.addEventListener('scroll', () => {
  const state = rooms.get(openRoomId)
  if (state === undefined) return
  if (view.messages.scrollTop < 120) loadOlder(state)
  if (nearBottom()) markRead(state)
})

function renderHistoryStatus (state) {
  view.historyStatus.textContent = state.hasMore
    ? ''
    : state.messages.size === 0 ? 'No messages yet. Say hello!' : `This is the beginning of ${state.info.title || '#' + state.info.id}.`
}

function clearMessages () {
  view.messages.replaceChildren(view.historyStatus)
  view.historyStatus.textContent = ''
  view.typing.textContent = ''
  view.online.replaceChildren()
  view.onlineCount.textContent = ''
}

function renderAllMessages (state) {
  clearMessages()
  renderHistoryStatus(state)
  for (const seq of [...state.messages.keys()].sort((a, b) => a - b)) insertMessage(state, state.messages.get(seq))
  for (const pending of state.pending) view.messages.append(pending.element)
  renderOnline(state)
  renderTyping(state)
  renderReceipts(state)
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })
const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' })

function messageElement (message, { pending = false } = {}) {
  const mine = message.userId === session.user.id
  const article = document.createElement('article')
  article.className = `message${mine ? ' mine' : ''}${pending ? ' pending' : ''}`
  if (message.seq !== undefined) article.dataset.seq = String(message.seq)
  article.dataset.user = message.userId
  article.dataset.time = message.createdAt
  const avatar = document.createElement('span')
  avatar.className = 'avatar'
  avatar.setAttribute('aria-hidden', 'true')
  paintAvatar(avatar, message.username)
  const wrap = document.createElement('div')
  wrap.className = 'body-wrap'
  const meta = document.createElement('div')
  meta.className = 'meta'
  const author = document.createElement('span')
  author.className = 'author'
  author.textContent = mine ? 'You' : message.username
  const time = document.createElement('time')
  time.dateTime = message.createdAt
  time.textContent = timeFormat.format(new Date(message.createdAt))
  time.title = dateTimeFormat.format(new Date(message.createdAt))
  meta.append(author, time)
  const bubble = document.createElement('div')
  bubble.className = 'bubble'
  bubble.textContent = message.body
  wrap.append(meta, bubble)
  if (pending) {
    const status = document.createElement('div')
    status.className = 'status'
    status.textContent = 'Sending…'
    wrap.append(status)
  }
  article.append(avatar, wrap)
  return article
}

/** Puts a stored message in seq order among those shown (history pages arrive older, live ones newer). */
function insertMessage (state, message) {
  const element = messageElement(message)
  let next = null
  for (const child of view.messages.querySelectorAll('article[data-seq]')) {
    if (Number(child.dataset.seq) > message.seq) { next = child; break }
  }
  if (next === null) next = view.messages.querySelector('article.pending')
  view.messages.insertBefore(element, next)
  regroup(element)
  const after = element.nextElementSibling
  if (after?.matches('article[data-seq]')) regroup(after)
}

/** Consecutive messages of one author within a few minutes read as one block. */
function regroup (element) {
  let previous = element.previousElementSibling
  while (previous !== null && !previous.matches('article[data-seq]')) previous = previous.previousElementSibling
  const continued = previous !== null &&
    previous.dataset.user === element.dataset.user &&
    Date.parse(element.dataset.time) - Date.parse(previous.dataset.time) < GROUP_MS
  element.classList.toggle('continued', continued)
}

function onMessage (state, message) {
  if (state.messages.has(message.seq)) return
  state.messages.set(message.seq, message)
  state.info.lastSeq = Math.max(state.info.lastSeq ?? 0, message.seq)
  const mine = message.userId === session.user.id
  if (mine) {
    // The server moved our read position to our own message.
    state.info.readSeq = Math.max(state.info.readSeq ?? 0, message.seq)
    const index = state.pending.findIndex((pending) => pending.body === message.body)
    if (index !== -1) state.pending.splice(index, 1)[0].element.remove()
  }
  // The server moved the sender's read position to what they wrote (no receipt for that).
  if (!mine) state.readSeqs.set(message.userId, { username: message.username, readSeq: message.seq })
  clearTyping(state, message.userId)
  if (state.info.id === openRoomId && state.historyLoaded) {
    const follow = mine || nearBottom()
    insertMessage(state, message)
    renderHistoryStatus(state)
    renderReceipts(state)
    if (follow) scrollToBottom()
    markRead(state)
  }
  state.info.unread = Math.max(0, state.info.lastSeq - (state.info.readSeq ?? 0))
  if (state.info.id !== openRoomId || document.visibilityState !== 'visible') renderRooms()
}

function onReceipt (state, event) {
  if (event.userId === session.user.id) {
    // Read on another device of ours.
    state.info.readSeq = Math.max(state.info.readSeq ?? 0, event.readSeq)
    state.info.unread = Math.max(0, (state.info.lastSeq ?? 0) - state.info.readSeq)
    renderRooms()
    return
  }
  const known = state.readSeqs.get(event.userId)
  if (known !== undefined && known.readSeq >= event.readSeq) return
  state.readSeqs.set(event.userId, { username: event.username, readSeq: event.readSeq })
  if (state.info.id === openRoomId) renderReceipts(state)
}

/** "Seen by bob" under the newest message each other person has read (not under their own). */
function renderReceipts (state) {
  for (const old of view.messages.querySelectorAll('.seen')) old.remove()
  const shown = [...view.messages.querySelectorAll('article[data-seq]')]
  if (shown.length === 0) return
  const byElement = new Map()
  for (const [userId, { username, readSeq }] of state.readSeqs) {
    let at = null
    for (const element of shown) {
      if (Number(element.dataset.seq) <= readSeq) at = element
      else break
    }
    if (at === null || at.dataset.user === userId) continue
    byElement.set(at, [...(byElement.get(at) ?? []), username])
  }
  for (const [element, names] of byElement) {
    const seen = document.createElement('p')
    seen.className = `seen${element.classList.contains('mine') ? '' : ' theirs'}`
    seen.textContent = `Seen by ${listNames(names.sort())}`
    element.after(seen)
  }
}

function markRead (state) {
  if (state.info.id !== openRoomId || document.visibilityState !== 'visible' || !nearBottom()) return
  const newest = Math.max(0, ...state.messages.keys())
  const previous = state.info.readSeq ?? 0
  if (newest <= previous || state.handle === null) return
  state.info.readSeq = newest
  state.info.unread = 0
  state.handle.read(newest).catch(() => {
    // Not joined yet, or the connection dropped: the next message, scroll or visibility change tries again.
    if (state.info.readSeq === newest) state.info.readSeq = previous
  })
}

document.addEventListener('visibilitychange', () => {
  const state = rooms.get(openRoomId)
  if (state !== undefined) {
    markRead(state)
    renderRooms()
  }
})

// ---- Presence and typing

function renderOnline (state) {
  if (state.info.id !== openRoomId) return
  const people = state.handle?.online ?? []
  view.onlineCount.textContent = people.length === 0 ? '' : `${people.length} online: ${listNames(people.map((p) => p.username === session.user.username ? 'you' : p.username))}`
  view.online.replaceChildren(...people.slice(0, 6).map(({ username }) => {
    const li = document.createElement('li')
    const avatar = document.createElement('span')
    avatar.className = 'avatar'
    avatar.title = username
    paintAvatar(avatar, username)
    li.append(avatar)
    return li
  }))
}

function onTyping (state, event) {
  if (event.userId === session.user.id) return
  if (event.typing) {
    clearTimeout(state.typing.get(event.userId)?.timer)
    state.typing.set(event.userId, {
      username: event.username,
      timer: setTimeout(() => clearTyping(state, event.userId), TYPING_STALE_MS)
    })
    renderTyping(state)
  } else {
    clearTyping(state, event.userId)
  }
}

function clearTyping (state, userId) {
  clearTimeout(state.typing.get(userId)?.timer)
  if (state.typing.delete(userId)) renderTyping(state)
}

function renderTyping (state) {
  if (state.info.id !== openRoomId) return
  const names = [...state.typing.values()].map((entry) => entry.username).sort()
  view.typing.textContent = names.length === 0
    ? ''
    : names.length > 3 ? 'Several people are typing…' : `${listNames(names)} ${names.length === 1 ? 'is' : 'are'} typing…`
}

// ---- Composer

view.message.addEventListener('input', () => {
  autosize()
  const room = rooms.get(openRoomId)?.handle
  room?.typing(view.message.value.trim() !== '')
})

view.message.addEventListener('blur', () => rooms.get(openRoomId)?.handle?.typing(false))

view.message.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault()
    view.composer.requestSubmit()
  }
})

view.composer.addEventListener('submit', (event) => {
  event.preventDefault()
  const state = rooms.get(openRoomId)
  const body = view.message.value.trim()
  if (state === undefined || body === '') return
  view.message.value = ''
  autosize()
  state.handle.typing(false)
  const element = messageElement({ userId: session.user.id, username: session.user.username, body, createdAt: new Date().toISOString() }, { pending: true })
  const pending = { body, element }
  state.pending.push(pending)
  view.messages.append(element)
  scrollToBottom()
  // Resolves once stored, also across reconnects; the client delivers our own message as a
  // `message` event too, which replaces this placeholder.
  state.handle.send(body).catch((error) => {
    element.classList.replace('pending', 'failed')
    element.querySelector('.status').textContent = `Not sent: ${error.message}`
    const index = state.pending.indexOf(pending)
    if (index !== -1) state.pending.splice(index, 1)
  })
})

function autosize () {
  view.message.style.height = 'auto'
  view.message.style.height = `${Math.min(view.message.scrollHeight + 2, 160)}px`
}

// ---- Helpers

function nearBottom () {
  const { scrollTop, scrollHeight, clientHeight } = view.messages
  return scrollHeight - scrollTop - clientHeight < 80
}

function scrollToBottom () {
  view.messages.scrollTop = view.messages.scrollHeight
}

function listNames (names) {
  if (names.length <= 1) return names.join('')
  return `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`
}

function paintAvatar (element, username) {
  let hue = 0
  for (const char of username) hue = (hue * 31 + char.codePointAt(0)) % 360
  element.style.setProperty('--hue', String(hue))
  element.textContent = [...username][0] ?? '?'
}

// ---- Start

session = loadSession()
if (session === null) {
  showAuth()
} else {
  refresh().then(() => startChat(), (error) => {
    if (!(error instanceof SessionExpired)) showAuth(`Could not reach the server: ${error.message}`)
  })
}
