/** A request refused for a reason the user can fix; the message is what cargo prints. */
export class CargoError extends Error {
  readonly status: number;
  constructor(message: string, status = 400) {
    super(message);
    this.name = 'CargoError';
    this.status = status;
  }
}
