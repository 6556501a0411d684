// Debian's Chromium driven by playwright-core (which downloads no browser of its own), and what a
// browser test needs around it: a free port to restart a server on, the page's errors, and
// screenshots.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'
import type { Test } from 'tap'

export const CHROMIUM = '/usr/bin/chromium'

/** Why the browser tests cannot run here, or null (`.ci/run` installs the package when it is missing). */
export function chromiumMissing (): string | null {
  return existsSync(CHROMIUM) ? null : `${CHROMIUM} is missing (apt-get install -y chromium)`
}

/** A headless Chromium, closed at teardown. */
export async function launchBrowser (t: Test): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // No sandbox: CI runs as root in a container. The rest keeps Chromium from reaching the network
    // on its own (updates, field trials), which a test machine may not have.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']
  })
  t.teardown(async () => await browser.close())
  return browser
}

/**
 * Everything that went wrong in a page, as text: console errors (CSP violations are reported
 * there), uncaught exceptions and unhandled rejections, requests that failed, and HTTP answers of
 * 400 and above. `expected` drops the lines a test provokes on purpose (a stopped server), and
 * should say yes only while it provokes them.
 */
export function watchPage (page: Page, name: string, expected: (line: string) => boolean = () => false): string[] {
  const problems: string[] = []
  const add = (line: string): void => {
    if (!expected(line)) problems.push(`${name}: ${line}`)
  }
  page.on('console', (message) => {
    if (message.type() === 'error') add(`console error: ${message.text()}`)
  })
  page.on('pageerror', (error) => add(`uncaught: ${error.stack ?? error.message}`))
  page.on('requestfailed', (request) => add(`request failed: ${request.method()} ${request.url()} (${request.failure()?.errorText ?? 'no reason'})`))
  page.on('response', (response) => {
    if (response.status() >= 400) add(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`)
  })
  return problems
}

/**
 * Where screenshots go: `E2E_SCREENSHOTS` when set (kept, to be looked at), else a temporary
 * directory removed at teardown (the screenshot still proves the page rendered).
 */
export function screenshotDir (t: Test): string {
  const kept = process.env.E2E_SCREENSHOTS
  if (kept !== undefined && kept !== '') {
    mkdirSync(kept, { recursive: true })
    return kept
  }
  const dir = mkdtempSync(join(tmpdir(), 'chat-e2e-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

