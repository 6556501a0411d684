// The demo page at GET /, in Chromium, used by two people as a person would: through its labelled
// form fields and named buttons only (API.md: "GET / a demo chat page built on /client.js").
//
// alice and bob, each in a browser context of their own, register on the page (which logs them
// in); bob also logs out and back in with the Log in button. Both open `general`. alice types:
// bob sees "alice is typing…"; alice presses Enter: bob sees the message, and alice online; bob
// has read it: alice sees "Seen by bob". bob answers with the Send button. Then bob's browser
// goes offline: his page says it is reconnecting, alice writes meanwhile, and once bob is back
// online his page says so and shows what he missed. Neither page logs an error (a CSP violation
// would show there) or has a request fail or refused, not even bob's while offline: the client
// waits for the browser's `online` instead of trying in vain.
import { join } from 'node:path'
import type { Browser, Locator, Page } from 'playwright-core'
import t, { type Test } from 'tap'
import type { Backend } from '../helpers/backends.js'
import { chromiumMissing, launchBrowser, screenshotDir, watchPage } from '../helpers/browser.js'
import { eachBackend, startTestServer } from '../helpers/server.js'

const PASSWORD = 'correct-horse-battery'

interface Person { readonly page: Page, readonly problems: string[] }

/** Waits for `locator` to be visible; one assertion either way, so a missing piece fails and the test goes on. */
async function sees (t: Test, locator: Locator, what: string, ms = 10_000): Promise<void> {
  t.ok(await locator.waitFor({ state: 'visible', timeout: ms }).then(() => true, () => false), what)
}

/** A person in a fresh browser context, registered through the page's form (which logs them in). */
async function register (t: Test, browser: Browser, base: string, username: string): Promise<Person> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 } })
  t.teardown(async () => await context.close())
  const page = await context.newPage()
  const person: Person = { page, problems: watchPage(page, username) }
  await page.goto(`${base}/`)
  await page.getByLabel('Username', { exact: true }).fill(username)
  await page.getByLabel('Password', { exact: true }).fill(PASSWORD)
  await page.getByRole('button', { name: 'Register', exact: true }).click()
  await sees(t, page.getByLabel('Message', { exact: true }), `${username} registered and is logged in: the Message box shows`)
  return person
}

async function openGeneral (t: Test, person: Person, who: string): Promise<void> {
  await person.page.getByRole('navigation', { name: 'Rooms' }).getByRole('button', { name: /general/i }).click()
  await sees(t, person.page.getByRole('heading', { name: /general/i }), `${who} has general open`)
}

async function run (t: Test, browser: Browser, backend: Backend): Promise<void> {
  const { baseUrl: base } = await startTestServer(t, backend)
  const shots = screenshotDir(t)
  const shot = async (person: Person, name: string): Promise<void> => {
    await person.page.screenshot({ path: join(shots, `${backend.name}-${name}.png`) })
  }

  const alice = await register(t, browser, base, 'alice')
  const bob = await register(t, browser, base, 'bob')
  // bob logs out and in again: the Log in button, and a page that keeps no password.
  await bob.page.getByRole('button', { name: 'Log out', exact: true }).click()
  await sees(t, bob.page.getByRole('button', { name: 'Log in', exact: true }), 'bob logged out: the form is back')
  t.equal(await bob.page.getByLabel('Password', { exact: true }).inputValue(), '', 'the form does not keep the password')
  await bob.page.getByLabel('Username', { exact: true }).fill('bob')
  await bob.page.getByLabel('Password', { exact: true }).fill(PASSWORD)
  await bob.page.getByRole('button', { name: 'Log in', exact: true }).click()
  await sees(t, bob.page.getByLabel('Message', { exact: true }), 'bob logged in with the Log in button')
  const stored = await bob.page.evaluate(() => JSON.stringify((globalThis as any).localStorage))
  t.notMatch(stored, PASSWORD, 'the password is not in localStorage')

  await openGeneral(t, alice, 'alice')
  await openGeneral(t, bob, 'bob')
  await sees(t, bob.page.getByText(/\d+ online: .*\balice\b/), 'bob sees alice online')

  // Typing, then the message.
  await alice.page.getByLabel('Message', { exact: true }).pressSequentially('hello bob, how are you?', { delay: 20 })
  await sees(t, bob.page.getByText('alice is typing…'), 'bob sees "alice is typing…"')
  await shot(bob, 'bob-sees-typing')
  await alice.page.getByLabel('Message', { exact: true }).press('Enter')
  const bobLog = bob.page.getByRole('log', { name: 'Messages' })
  await sees(t, bobLog.getByText('hello bob, how are you?'), 'alice pressed Enter: bob sees her message')
  t.equal(await alice.page.getByLabel('Message', { exact: true }).inputValue(), '', 'alice\'s Message box is empty again')
  await sees(t, alice.page.getByRole('log', { name: 'Messages' }).getByText('hello bob, how are you?'), 'alice sees her own message')
  const typingGone = await bob.page.getByText('alice is typing…').waitFor({ state: 'hidden', timeout: 10_000 }).then(() => true, () => false)
  t.ok(typingGone, 'the typing line goes once the message is sent')

  // bob has the room open at the bottom, so he has read it.
  await sees(t, alice.page.getByText('Seen by bob'), 'alice sees the read receipt "Seen by bob"')
  await shot(alice, 'alice-sees-receipt')

  // bob answers with the Send button.
  await bob.page.getByLabel('Message', { exact: true }).fill('fine, thanks!')
  await bob.page.getByRole('button', { name: 'Send', exact: true }).click()
  await sees(t, alice.page.getByRole('log', { name: 'Messages' }).getByText('fine, thanks!'), 'bob clicked Send: alice sees his answer')
  await sees(t, alice.page.getByText(/\d+ online: .*\bbob\b/), 'alice sees bob online')

  // bob's browser goes offline: his page shows the connection state; what he missed shows when he is back.
  await bob.page.context().setOffline(true)
  const status = bob.page.getByRole('status')
  await sees(t, status.getByText(/reconnecting/i), 'offline: bob\'s page says it is reconnecting')
  await shot(bob, 'bob-reconnecting')
  await alice.page.getByLabel('Message', { exact: true }).fill('are you still there?')
  await alice.page.getByLabel('Message', { exact: true }).press('Enter')
  await sees(t, alice.page.getByRole('log', { name: 'Messages' }).getByText('are you still there?'), 'alice\'s message is stored while bob is offline')
  await bob.page.context().setOffline(false)
  await sees(t, bobLog.getByText('are you still there?'), 'back online: bob sees what he missed', 30_000)
  t.notOk(await status.getByText(/reconnecting/i).isVisible(), 'bob\'s page no longer says it is reconnecting')
  await shot(bob, 'bob-back-online')
  await shot(alice, 'alice-end')

  t.strictSame([...alice.problems, ...bob.problems], [], 'no console errors, failed requests or HTTP errors in either page')
}

const missing = chromiumMissing()
if (missing !== null) {
  t.test('two people chat on the demo page in Chromium', { skip: missing }, async () => {})
} else {
  t.test('two people chat on the demo page in Chromium', async (t) => {
    const browser = await launchBrowser(t)
    eachBackend(t, async (t, backend) => await run(t, browser, backend))
  })
}
