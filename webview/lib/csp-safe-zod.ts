/**
 * Must be the first import of every panel. zod compiles validators with new Function() when it can,
 * and probes for that ability while schemas are being built; a panel's Content-Security-Policy
 * forbids eval, so even the probe is reported as a violation. Interpreted validation is fast enough
 * for the panels' messages.
 */
import { z } from 'zod';

z.config({ jitless: true });
